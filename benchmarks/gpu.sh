#!/usr/bin/env bash
# The GPU figures in the README: run on a GPU machine from the repository root,
# with the reference packages as wheels in .whl/ (torchray, grad-cam; built with
# `pip wheel --no-deps`). Writes its logs to $OUT (default: benchmarks/gpu-logs).
set -o pipefail
OUT=${OUT:-benchmarks/gpu-logs}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import jax, flax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())"; } 2>&1 | tee "$OUT/gpu.txt"
python3 benchmarks/train_speed.py --batch-size 256 --repeats 5 --window 20 2>&1 | tee "$OUT/train_speed_gpu.txt"
python3 benchmarks/attribution_speed.py --runs 3 --max-iter 100 --ep-images 64 --torch-device cuda \
  --torch-threads 16 2>&1 | tee "$OUT/attribution_speed_gpu.txt"
