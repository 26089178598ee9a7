"""Images for real local nodes, built without a Docker engine or a registry."""
