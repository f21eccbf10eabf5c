#!/usr/bin/env bash
# Several bundled_styles.py runs at once on one GPU, to compare training settings in one short lease
# (one process alone leaves an H100 mostly idle). Each VARIANT is NAME:ARGS; every run also gets
# $COMMON. Runs write WORK/NAME/ (checkpoints, log.txt, results.json; WORK defaults to OUT) and
# OUT/NAME.log; OUT/gpu.log samples utilisation every 30 s. With WORK set elsewhere, each run's
# folder is also packed as OUT/NAME.tar: one file per run, for machines that return few files
# (add --slim to the runs to keep the tars small). From the repository root:
#   COMMON="--device cuda --workers 3 --slim" WORK=/tmp/runs bash tools/bundled_variants.sh OUT \
#     "a:--style-weight 0.3 --skip incremental,johnson" "b:--style-weight 0.8 --skip incremental,johnson"
set -uo pipefail
out=${1:?out dir}; shift
work=${WORK:-$out}
mkdir -p "$out" "$work"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
(while true; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>&1; sleep 30; done) >"$out/gpu.log" &
monitor=$!
pids=()
names=()
for variant in "$@"; do
  name=${variant%%:*}; args=${variant#*:}
  # shellcheck disable=SC2086 # ARGS and COMMON are word lists
  python3 tools/bundled_styles.py --out "$work/$name" ${COMMON:-} $args >"$out/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
kill "$monitor"
if [ "$work" != "$out" ]; then
  for name in "${names[@]}"; do tar -cf "$out/$name.tar" -C "$work" "$name" || status=1; done
fi
tail -n 3 "$out"/*.log
exit $status
