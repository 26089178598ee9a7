# A user's own image: Python with torch and numpy, and nothing of Ringleader. Jobs whose workers
# use it show that Ringleader needs nothing in the workers' image beyond torch.
# Build from the repository root:
#   docker build -f tools/images/user.Dockerfile --build-arg TORCH=torch==2.13.0 -t torch-user .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where pip finds packages: unset, PyPI; a local build passes a directory of wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG TORCH=torch
ARG NUMPY=numpy
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "$TORCH" "$NUMPY"
