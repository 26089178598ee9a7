# A user's image for DeepSpeed training: the plain torch image (tools/images/user.Dockerfile) with
# DeepSpeed and Ringleader's client library, at the versions requirements-dev.txt and
# requirements-images.txt pin.
# Build from the repository root:
#   docker build -f tools/images/deepspeed.Dockerfile --build-arg BASE_IMAGE=torch-user -t ds-train .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where pip finds packages: unset, PyPI; a local build passes a directory of wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/ringleader
COPY requirements-dev.txt requirements-images.txt ./
COPY client/pyproject.toml client/
COPY client/ringleader_client client/ringleader_client
# DeepSpeed is an sdist. On CPU it needs its shared-memory communication op, which it would
# otherwise compile on first use in every fresh pod (about 110 s on 2 cores), and not at all in
# an image without a C++ compiler. So the op is built here (DS_BUILD_SHM_COMM=1, the other ops
# left out), against the image's torch (--no-build-isolation: the build imports torch), and the
# compiler is removed in the same step so the image does not carry it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ python3-dev \
    && pip install setuptools \
    && DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 DS_ACCELERATOR=cpu \
       pip install --no-build-isolation \
           --constraint requirements-dev.txt --constraint requirements-images.txt \
           deepspeed ./client \
    && apt-get purge -y --auto-remove g++ python3-dev \
    && rm -rf /var/lib/apt/lists/* /tmp/ringleader
WORKDIR /
