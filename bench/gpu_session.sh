#!/usr/bin/env bash
# One GPU session (issue 8): on a lent H100/H200 (the device tool), in under ~8 minutes:
#   1. print the GPU and software;
#   2. build the fp16 batch-1 torch table for GPUNet-0/1/2, the factor grid and 512 Sobol networks;
#   3. validate on >= 100 held-out Sobol networks (seed 1) measured end to end, fit and store the
#      calibration, check GPUNet-0/1/2 end to end against the stored calibration;
#   4. harness benchmark (GPU figures) and the factor / validation charts.
# Work happens in $WORK; at the end (or on failure) one archive and the log are put in $OUT,
# because the device tool brings back at most 8 files: unpack the archive, copy the table and its
# .networks.jsonl to tables/ and the reports and charts to bench/results/<gpu>/.
#
# Each measuring step has a time limit (seconds: BUILD_S, VALIDATE_S, HARNESS_S) so that one slow
# step cannot use up the session: a table cut short is intact and resumable, and validate measures
# the keys its networks still lack. Defaults total about 7 minutes of commands.
#
#   device run: bash bench/gpu_session.sh   (OUT, WORK, SAMPLE, VALIDATE, PROTOCOL, *_S may be overridden)
set -euo pipefail
OUT=${OUT:-gpu_out}
WORK=${WORK:-gpu_work}
SAMPLE=${SAMPLE:-512}
VALIDATE=${VALIDATE:-100}
PROTOCOL=${PROTOCOL:-}
BUILD_S=${BUILD_S:-200}
VALIDATE_S=${VALIDATE_S:-150}
HARNESS_S=${HARNESS_S:-60}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/session.log") 2>&1
trap 'tar -czf "$OUT/gpu_session.tgz" --exclude="*.lock" -C "$WORK" . ; echo "archive: $OUT/gpu_session.tgz"' EXIT
t0=$(date +%s)
step() { echo; echo "== $(( $(date +%s) - t0 )) s: $*"; }
# limited SECONDS CMD...: run CMD, stopping it after SECONDS; a step cut short is reported, not fatal.
limited() {
  local s=$1; shift
  timeout --signal=INT --kill-after=20 "$s" "$@" && return 0
  local rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ] || [ "$rc" -eq 137 ]; then
    echo "!! stopped after ${s} s (rc $rc): $1 ${2:-}"; return 0
  fi
  return "$rc"
}

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv || true
pip install -q --no-deps -e . >/dev/null 2>&1 || pip install -q --no-deps -e .
latbench info

GPU=$(python -c "import torch, re; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name(0).lower().replace('nvidia', '')).strip('-'))")
TABLE="$WORK/$GPU-torch-fp16-b1.jsonl"
PROTO_ARG=${PROTOCOL:+--protocol $PROTOCOL}

step "table: GPUNet-0/1/2 + factor grid + $SAMPLE Sobol networks -> $TABLE"
limited "$BUILD_S" latbench build-table --device cuda --backend torch --precision fp16 --batch 1 $PROTO_ARG \
  --archs gpunet-0 --archs gpunet-1 --archs gpunet-2 --grid factor_grid \
  --sample "$SAMPLE" --seed 0 --out "$TABLE"
latbench table show "$TABLE" --failures 10

step "validation: $VALIDATE held-out Sobol networks (seed 1)"
limited "$VALIDATE_S" latbench validate --table "$TABLE" --n "$VALIDATE" --seed 1 \
  --report "$WORK/validation.json" --plot "$WORK/validate.png"

step "GPUNet-0/1/2 end to end against the stored calibration"
latbench validate --table "$TABLE" --n 0 --archs gpunet-0 --archs gpunet-1 --archs gpunet-2 \
  --no-store --report "$WORK/validation_gpunet.json"
for net in gpunet-0 gpunet-1 gpunet-2; do latbench predict "$net" --table "$TABLE" || true; done

step "charts"
latbench plot factors --table "$TABLE" --out "$WORK"

step "harness benchmark"
limited "$HARNESS_S" python bench/harness_bench.py --device cuda --json "$WORK/harness_bench.json"

step "done"
ls -la "$WORK"
