#!/usr/bin/env bash
# GPU training speed on one CUDA device (written for one H100; at most 8 minutes in all).
#
#   bash benchmarks/gpu.sh            # from the repository root, or from anywhere
#
# ResNet-20, He et al.'s he2016 schedule (64k iterations, batch 128) through reslab's
# trainer with the dataset on the GPU, bf16 autocast, channels_last and torch.compile:
# once on CIFAR-shaped synthetic data, once on Fashion-MNIST padded to 32x32 (read from
# data/fashion-mnist at the repository root, or $FASHION_MNIST_DIR); plus a 2000-iteration
# eager fp32 baseline (and the DataLoader reference pipeline), extrapolated to 64k.
# Targets: 64k iterations in <= 60 s, and >= 3x the eager baseline.
#
# torch.compile runs with mode reduce-overhead (CUDA graphs; falls back to mode default, and
# says so, if a run fails); COMPILE_MODE=default or max-autotune picks another (config key compile_mode).
# Prints nvidia-smi and every result; if $OUT is set, also writes gpu_results.json,
# gpu.log and nvidia-smi.txt there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-${TMPDIR:-/tmp}/reslab-inductor}"

out="${OUT:-}"
if [[ -n "$out" ]]; then mkdir -p "$out"; fi
log_file="${out:+$out/gpu.log}"
log_file="${log_file:-/dev/null}"

echo "== reslab GPU benchmark, $(date -Is), $(hostname)" | tee -a "$log_file"
echo "== git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')" | tee -a "$log_file"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi 2>&1 | tee -a "$log_file" ${out:+"$out/nvidia-smi.txt"} || true
else
  echo "nvidia-smi not found" | tee -a "$log_file"
fi
"$PY" -c 'import torch, sys; print("== python", sys.version.split()[0], "torch", torch.__version__,
  "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tee -a "$log_file"

json_arg=()
if [[ -n "$out" ]]; then json_arg=(--json "$out/gpu_results.json"); fi
# 440 s of measurements inside a hard 470 s limit: the whole script stays under 8 minutes.
status=0
timeout -k 10 470 "$PY" benchmarks/gpu_train.py --budget 440 --compile-mode "${COMPILE_MODE:-reduce-overhead}" \
  --data-dir "${FASHION_MNIST_DIR:-data/fashion-mnist}" "${json_arg[@]}" 2>&1 | tee -a "$log_file" || status=$?
echo "== done (exit $status)" | tee -a "$log_file"
exit "$status"
