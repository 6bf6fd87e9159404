#!/usr/bin/env bash
# The device check, for when a GPU is lent (one GPU, under 8 minutes in all):
#   (a) the CUDA confusion matrix equals the CPU one on the same maps; its update time against a
#       copy of the same bytes;
#   (b) the paper's model (deeplabv3plus_resnet101, 512x1024 crops, batch 8, AMP, channels_last)
#       on synthetic data for 100 steps: images/s and peak memory, harness against a bare loop;
#   (c) `fairseg-bench run --jobs 2` with two runs sharing the one GPU, against `--jobs 1`.
# Each part has its own time limit, so one that hangs cannot eat the others' time.
#
#   benchmarks/gpu_check.sh            # on the GPU; prints Markdown tables for benchmarks/README.md
#   benchmarks/gpu_check.sh --dry      # the same steps on the CPU at toy sizes (the tests run this)
#
# Needs the package and its dependencies importable by $PYTHON (default: .venv/bin/python if
# present, else python3); writes its runs under $OUT (default: a new temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$(mktemp -d)}
DRY=""
if [ "${1:-}" = "--dry" ]; then DRY=--dry; fi
START=$(date +%s)

if [ -z "$DRY" ]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
fi

echo "## (a) confusion matrix"
timeout 120 "$PYTHON" benchmarks/gpu_check.py confusion $DRY

echo "## (b) training the paper's model: harness vs bare loop"
timeout 300 "$PYTHON" benchmarks/gpu_check.py train $DRY

echo "## (c) run --jobs 2: two runs on one device"
if [ -n "$DRY" ]; then DEVICE=cpu; MODEL=unet_tiny; SIZE="[32, 64]"; ITERS=6; IMAGES=16
else DEVICE=cuda; MODEL=unet_small; SIZE="[64, 128]"; ITERS=300; IMAGES=400; fi
cat > "$OUT/jobs.yaml" <<YAML
name: jobs
losses: [mcce, focal]
seeds: [0]
data:
  dataset: synthetic
  train_options: {num_images: $IMAGES, size: $SIZE, seed: 0}
  val_options: {num_images: 8, size: $SIZE, seed: 0}
model: {name: $MODEL}
optim: {name: adam, lr: 0.002}
train: {iters: $ITERS, batch_size: 8, checkpoint_every: 100}
eval: {batch_size: 8, samples: 0}
YAML
for JOBS in 1 2; do
    T0=$(date +%s.%N)
    timeout 120 "$PYTHON" -m fairseg_bench run -c "$OUT/jobs.yaml" --out "$OUT/jobs$JOBS" --device $DEVICE \
        --jobs $JOBS --quiet --no-report > "$OUT/jobs$JOBS.out" 2> "$OUT/jobs$JOBS.err" \
        || { cat "$OUT/jobs$JOBS.err"; exit 1; }
    T1=$(date +%s.%N)
    echo "| --jobs $JOBS | $(awk "BEGIN {printf \"%.1f\", $T1 - $T0}") s |"
done
"$PYTHON" -m fairseg_bench status "$OUT/jobs2"
"$PYTHON" - "$OUT" <<'PY'
import sys
from pathlib import Path
from fairseg_bench.results import read_record
out = Path(sys.argv[1])
for run in ("mcce-s0", "focal-s0"):
    a, b = (read_record(out / f"jobs{j}" / "jobs" / run) for j in (1, 2))
    same = a["confusion_matrix"] == b["confusion_matrix"]
    print(f"{run}: --jobs 2 confusion matrix {'==' if same else '!='} --jobs 1")
PY
echo "gpu_check: done in $(( $(date +%s) - START )) s; runs under $OUT"
