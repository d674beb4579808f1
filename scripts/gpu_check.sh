#!/usr/bin/env bash
# GPU check: what no CPU machine can test, in under 8 minutes on one H100/H200-class GPU.
#
#   bash scripts/gpu_check.sh                 # results in $OUT (the device tool's folder) or out/gpu_check
#
# Runs from the repository with the machine's own Python (torch with CUDA, and the package's
# dependencies, already installed: nothing is downloaded). Each step has its own time limit and
# writes <step>.log / <step>.json; summary.txt lists every step's exit code. Steps:
#   1. environment (nvidia-smi, torch, CUDA)          4. the same with torch.compile
#   2. the CUDA tests (pytest -m gpu)                 5. the shipped model per frame at 640x480 (mf bench eval)
#   3. bf16 forward/backward step time, peak memory   6. 2-process FSDP2 training smoke run over NCCL
#      and MFU: MF-S, MF-B, MF-XL (1.3B, FLUX.2-        (only with 2+ GPUs)
#      shaped) at 640x480; i2d 1-step latency
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-out/gpu_check}
mkdir -p "$RESULTS"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
MF=("$PY" -m mf_training.cli)

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record the exit code
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
  local code=$?
  echo "$name: exit $code, $((SECONDS - start)) s" | tee -a "$RESULTS/summary.txt"
  tail -n 3 "$RESULTS/$name.log"
}

: > "$RESULTS/summary.txt"
step environment 30 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.version.cuda, \
torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "torch sees no CUDA GPU: nothing more to check" | tee -a "$RESULTS/summary.txt"
  exit 1
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")

step cuda_tests 120 "$PY" -m pytest -q -m gpu test/test_gpu.py
BENCH=(bench model --device cuda --sizes MF-S,MF-B,MF-XL --resolutions 640x480 --no-baseline --repeats 3
       --warmup 2 --latency-size MF-XS --latency-resolution 640x480 --steps 1,4 --latency-repeats 5)
step bench_model_eager 150 "${MF[@]}" "${BENCH[@]}" --out "$RESULTS/bench_model_eager.json"
step bench_model_compiled 180 "${MF[@]}" "${BENCH[@]}" --compile --out "$RESULTS/bench_model_compiled.json"
step bench_eval_shipped 60 "${MF[@]}" bench eval --model default --device cuda --repeats 10 \
  --out "$RESULTS/bench_eval_shipped.json"
if [ "$GPUS" -ge 2 ]; then
  step fsdp_smoke 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m mf_training.cli train \
    --config config/train_tiny.yaml --out "$RESULTS/fsdp_run" steps=5 ckpt_every=5 perf.device=cuda perf.fsdp=true
else
  echo "fsdp_smoke: skipped (1 GPU)" | tee -a "$RESULTS/summary.txt"
fi
echo "done: $RESULTS/summary.txt"
