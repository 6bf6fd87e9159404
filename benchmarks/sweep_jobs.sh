#!/usr/bin/env bash
# `make run`'s sweep (quick preset: mcce, focal, tce, seed 0) with --jobs 1 and then --jobs 2, on
# this machine, as a ratio of wall times. Needs an otherwise idle machine (two cores busy with other
# work make both numbers meaningless); about 15 minutes on 2 cores. Not part of `make bench`.
#
#   benchmarks/sweep_jobs.sh            # --jobs 1, then --jobs 2
#   ORDER="2 1" benchmarks/sweep_jobs.sh  # the other order, to see any drift of the machine
#
# With --jobs 2 on 2 cores each run gets one thread (OMP_NUM_THREADS=1): the target is >= 1.3x.
set -euo pipefail
cd "$(dirname "$0")/.."
FAIRSEG=${FAIRSEG:-$( [ -x .venv/bin/fairseg-bench ] && echo .venv/bin/fairseg-bench || echo fairseg-bench )}
OUT=${OUT:-$(mktemp -d)}
declare -A WALL
for JOBS in ${ORDER:-1 2}; do
    T0=$(date +%s.%N)
    "$FAIRSEG" run --losses mcce,focal,tce --jobs "$JOBS" --out "$OUT/jobs$JOBS" --quiet --no-report \
        > "$OUT/jobs$JOBS.out" 2> "$OUT/jobs$JOBS.err"
    T1=$(date +%s.%N)
    WALL[$JOBS]=$(awk "BEGIN {printf \"%.1f\", $T1 - $T0}")
    echo "--jobs $JOBS: ${WALL[$JOBS]} s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo "| cores | --jobs 1 | --jobs 2 | ratio |"
echo "|---:|---:|---:|---:|"
echo "| $(nproc) | ${WALL[1]} s | ${WALL[2]} s | $(awk "BEGIN {printf \"%.2f\", ${WALL[1]} / ${WALL[2]}}")x |"
echo "runs under $OUT"
