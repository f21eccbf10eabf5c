#!/usr/bin/env bash
# Several bundled_styles.py runs at once on one GPU, to compare training settings in one short lease
# (one process alone leaves an H100 mostly idle). Each VARIANT is NAME:ARGS; every run also gets
# $COMMON. Writes OUT/NAME/ (checkpoints, log.txt, results.json), OUT/NAME.log and OUT/gpu.log
# (utilisation every 30 s). From the repository root:
#   COMMON="--device cuda --workers 3" bash tests/bench/bundled_variants.sh OUT \
#     "a:--style-weight 0.3 --skip incremental,johnson" "b:--style-weight 0.8 --skip incremental,johnson"
set -uo pipefail
out=${1:?out dir}; shift
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
(while true; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>&1; sleep 30; done) >"$out/gpu.log" &
monitor=$!
pids=()
for variant in "$@"; do
  name=${variant%%:*}; args=${variant#*:}
  # shellcheck disable=SC2086 # ARGS and COMMON are word lists
  python3 tests/bench/bundled_styles.py --out "$out/$name" ${COMMON:-} $args >"$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
kill "$monitor"
tail -n 3 "$out"/*.log
exit $status
