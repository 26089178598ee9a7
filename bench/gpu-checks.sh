#!/usr/bin/env bash
# The checks that need a CUDA machine, in one run (issue 4): the GPU-marked trainer tests (the
# NCCL path, a checkpoint resumed on the GPU, FSDP with its bf16 policy), bench.trainer_gpu, and
# bench.trainer on that machine's CPU cores with the GPU hidden (a quieter machine).
#   bench/gpu-checks.sh [LOG_DIR]      # $PYTHON (default python3) must hold torch and pytest
set -uo pipefail
failed=0
py=${PYTHON:-python3}
logs=${1:-gpu-logs}
mkdir -p "$logs"
export PYTHONPATH="$PWD/trainer-image:$PWD" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$logs/device.txt"
"$py" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.nccl.version())' \
  | tee -a "$logs/device.txt"
nproc | tee -a "$logs/device.txt"
timeout 240 "$py" -m pytest -p no:cacheprovider --confcutdir=tests/trainer -m gpu -v \
  tests/trainer/test_training.py tests/trainer/test_sharding.py 2>&1 | tee "$logs/gpu-tests.txt" || failed=1
timeout 200 "$py" -m bench.trainer_gpu 2>&1 | tee "$logs/bench-gpu.txt" || failed=1
CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 timeout 200 "$py" -m bench.trainer 2>&1 \
  | tee "$logs/bench-cpu.txt" || failed=1
exit $failed
