# A user's image for Hugging Face training: the plain torch image (tools/images/user.Dockerfile)
# with transformers, accelerate and Ringleader's client library, at the versions
# requirements-dev.txt pins (the ones the tests ran with).
# Build from the repository root:
#   docker build -f tools/images/hf.Dockerfile --build-arg BASE_IMAGE=torch-user -t hf-train .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where pip finds packages: unset, PyPI; a local build passes a directory of wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/ringleader
COPY requirements-dev.txt ./
COPY client/pyproject.toml client/
COPY client/ringleader_client client/ringleader_client
RUN pip install --constraint requirements-dev.txt transformers accelerate ./client \
    && rm -rf /tmp/ringleader
WORKDIR /
