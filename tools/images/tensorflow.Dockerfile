# A user's image for TensorFlow training: Python with tensorflow, tf-keras (Keras 2, which
# `model.fit` needs under MultiWorkerMirroredStrategy: Keras 3 fails there, keras-team/keras#20585),
# scikit-learn (the example's bundled digits) and Ringleader's client library (its Keras
# callback), at the versions requirements-images.txt and requirements-dev.txt pin. No torch.
# Build from the repository root:
#   docker build -f tools/images/tensorflow.Dockerfile -t tf-train .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where pip finds packages: unset, PyPI; a local build passes a directory of wheels.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=1

WORKDIR /tmp/ringleader
COPY requirements-dev.txt requirements-images.txt ./
COPY client/pyproject.toml client/
COPY client/ringleader_client client/ringleader_client
RUN pip install --constraint requirements-dev.txt --constraint requirements-images.txt \
        tensorflow tf-keras scikit-learn ./client \
    && rm -rf /tmp/ringleader
WORKDIR /
