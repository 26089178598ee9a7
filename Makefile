# Ringleader: the commands users and CI run. `make` alone lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: help venv binaries addon-binaries node-binaries host-packages images realnodes demo cluster-up cluster-down cluster-status crds crds-check openapi run lint format unit integration trainer-test bench-trainer bench-sharding gpu-checks bench-recovery bench-goodput bench-elastic e2e schedulers-test test clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt operator/pyproject.toml client/pyproject.toml trainer-image/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e operator -e client -e trainer-image
	touch $@

venv: $(STAMP) ## create the Python virtual environment (.venv) with pinned dependencies

binaries: ## build the pinned Kubernetes, etcd, kwok and helm binaries (cached in ~/.cache/ringleader)
	tools/build-binaries.sh

addon-binaries: ## build the optional schedulers: Kueue, Volcano, coscheduling (cached in ~/.cache/ringleader)
	tools/build-addons.sh kueue volcano coscheduling

node-binaries: ## build kubelet, containerd, CoreDNS and kube-proxy for real local nodes (cached in ~/.cache/ringleader)
	tools/build-binaries.sh node

host-packages: ## install the Debian packages real nodes and image builds need (root; only those missing)
	tools/install-host-packages.sh

images: venv host-packages ## build the real nodes' images (cached by content in ~/.cache/ringleader/images)
	$(PY) -m tools.images

LOCAL_NODES ?= 0
# Real nodes need the kubelet, containerd and their host packages; kwok's nodes need neither.
NODE_PREREQS := $(if $(filter-out 0,$(LOCAL_NODES)),node-binaries host-packages)
ADDONS ?=
cluster-up: venv binaries $(NODE_PREREQS) ## start the local cluster (LOCAL_NODES=2 adds real nodes: kubelet, containerd, root; ADDONS=kueue,volcano,coscheduling)
	$(PY) -m tools.localcluster up --local-nodes $(LOCAL_NODES) --addons "$(ADDONS)"

cluster-down: venv ## stop the local cluster (its data stays in .cluster/ until `make clean`)
	$(PY) -m tools.localcluster down

cluster-status: venv ## show whether each local cluster component is running
	$(PY) -m tools.localcluster status

demo: venv binaries node-binaries host-packages ## real nodes, the operator installed by its chart, a training job end to end (root)
	$(PY) -m tools.demo

crds: venv ## regenerate crds/ from operator/ringleader/models.py
	$(PY) -m ringleader.crdgen

crds-check: venv ## fail when crds/ is out of date
	$(PY) -m ringleader.crdgen --check

openapi: venv ## re-vendor the core/v1 schemas from the pinned k8s.io/kubernetes module
	$(PY) -m ringleader.crdgen --refresh-openapi

run: venv ## run the operator in the foreground against .cluster/kubeconfig (or $KUBECONFIG)
	export KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.cluster/kubeconfig}; \
	$(BIN)/kubectl apply --server-side -f crds/ && $(PY) -m ringleader

lint: venv ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy operator/ringleader client/ringleader_client trainer-image/ringleader_trainer tools tests bench

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: venv ## unit tests: pure logic, no server
	$(BIN)/pytest tests/unit $(PYTEST_FLAGS)

integration: venv binaries ## integration tests against a real local control plane (started by the tests)
	$(BIN)/pytest tests/integration $(PYTEST_FLAGS)

trainer-test: venv ## the trainer's tests: real torch.distributed processes on CPU/gloo (a few minutes)
	OMP_NUM_THREADS=1 $(BIN)/pytest tests/trainer $(PYTEST_FLAGS)

bench-trainer: venv ## trainer throughput, checkpoint stall and all-reduce bandwidth figures
	OMP_NUM_THREADS=1 $(PY) -m bench.trainer

bench-sharding: venv ## DDP vs FSDP per-rank memory and throughput (201M parameters), activation checkpointing
	OMP_NUM_THREADS=1 $(PY) -m bench.sharding

gpu-checks: venv ## on a machine with an NVIDIA GPU: the GPU-marked tests (NCCL) and GPU figures
	PYTHON=$(PY) bench/gpu-checks.sh gpu-logs

bench-recovery: venv binaries node-binaries host-packages ## time from injected failures to the next step, on real nodes (root)
	$(PY) -m bench.recovery

bench-goodput: venv binaries node-binaries host-packages ## share of wall time kept as training under repeated failures, on real nodes (root)
	$(PY) -m bench.goodput

bench-elastic: venv binaries node-binaries host-packages ## time to train at a new size, in place vs gang restart, on real nodes (root)
	$(PY) -m bench.elastic

# Not in `test`: a cold build of the three schedulers takes about 28 min on two cores (bench/RESULTS.md),
# which would take CI past its 90 min. Run it where they are built (`make addon-binaries`).
schedulers-test: venv binaries addon-binaries ## integration with the real Kueue, Volcano and coscheduling (builds them once)
	$(BIN)/pytest tests/schedulers $(PYTEST_FLAGS)

# Without root the tests skip themselves, so nothing is installed or built for them. One pytest
# session for both directories: one cluster, its images imported into its nodes once.
e2e: venv binaries ## real nodes (pods, images, DNS) and real training through the chart-installed operator (root; skipped otherwise)
	[ "$$(id -u)" -ne 0 ] || { tools/install-host-packages.sh && tools/build-binaries.sh node; }
	$(BIN)/pytest tests/realnodes tests/e2e $(PYTEST_FLAGS)

realnodes: venv binaries ## the real-node tests only: kubelet, containerd, DNS, kube-proxy, images (root; skipped otherwise)
	[ "$$(id -u)" -ne 0 ] || { tools/install-host-packages.sh && tools/build-binaries.sh node; }
	$(BIN)/pytest tests/realnodes $(PYTEST_FLAGS)

test: lint unit trainer-test integration e2e ## everything CI runs: lint, unit, trainer, integration, real nodes and e2e

clean: ## stop the local cluster and remove its state and the virtual environment
	if [ -x $(PY) ]; then $(PY) -m tools.localcluster down; fi
	rm -rf .cluster .cluster-test .cluster-test-* .cluster-bench .cluster-bench-* $(VENV)
