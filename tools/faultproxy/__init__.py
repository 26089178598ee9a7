"""A fault-injecting proxy between the operator and the API server (tests and benchmarks)."""
