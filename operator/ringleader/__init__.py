"""Ringleader: a Kubernetes operator for distributed PyTorch training."""
