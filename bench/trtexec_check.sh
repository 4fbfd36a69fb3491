#!/usr/bin/env bash
# latbench's TensorRT timing of one block beside trtexec's, on the very same engine.
#
#   bench/trtexec_check.sh [BLOCK_KEY] [PRECISION]      (defaults: an IRB at 28x28, fp16)
#
# latbench builds the block's engine as a table build would (precisions from the ONNX types,
# builder optimisation level 3; no table, so no timing cache on disk), times it with its harness
# (cache protocol warm: one engine replayed back to back, as trtexec does) and saves the timed
# plan; trtexec then loads that plan and reports its median "GPU Compute Time". trtexec times one
# engine run per CUDA graph launch, latbench many runs per launch, so on blocks of a few
# microseconds expect trtexec a little higher (the per-launch cost).
# Needs TensorRT's Python package and trtexec of the same TensorRT version, and an NVIDIA GPU.
# PYTHON selects the interpreter (default: python).
set -euo pipefail

KEY=${1:-irb-i64-o64-h28-w28-k3-s1-e4-swish-se1}
PRECISION=${2:-fp16}
PY=${PYTHON:-python}
die() { echo "trtexec_check: $*" >&2; exit 2; }

command -v trtexec >/dev/null 2>&1 ||
    die "trtexec is not on PATH; it ships with TensorRT" \
        "(tar/deb packages: bin/ or /usr/src/tensorrt/bin; NGC TensorRT containers)"
"$PY" -c "import tensorrt" >/dev/null 2>&1 ||
    die "TensorRT's Python package does not import in $PY: pip install latbench[trt]" \
        "on a machine with an NVIDIA GPU and access to pypi.nvidia.com"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PLAN="$WORK/block.plan"

# Last line printed: latbench median (us), unroll, TensorRT major version, reformat-at-I/O flag.
LB=$("$PY" - "$KEY" "$PRECISION" "$PLAN" <<'EOF'
import sys
from pathlib import Path

import tensorrt

from latbench.backends import BackendConfig, create
from latbench.errors import LatbenchError
from latbench.harness import HarnessSettings, measure
from latbench.spec import BlockSpec

key, precision, plan = sys.argv[1:4]
try:
    spec = BlockSpec.from_key(key)
    be = create("tensorrt", BackendConfig(device="cuda", precision=precision, protocol="warm"))
    with be.prepare(spec) as exe:
        m, _ = measure(exe, HarnessSettings.for_device("cuda"))
        Path(plan).write_bytes(exe.plan)
        print(m.median_us, m.unroll, tensorrt.__version__.split(".")[0], exe.info["reformat_at_io"])
    be.close()
except LatbenchError as err:
    sys.exit(f"trtexec_check: {err}")
EOF
) || exit 1
read -r LB_US LB_UNROLL TRT_MAJOR REFORMAT <<<"$(tail -n 1 <<<"$LB")"

FLAGS=(--loadEngine="$PLAN")
# TensorRT 10 needs these; 11 made them the defaults and keeps the flags as deprecated no-ops.
if [ "$TRT_MAJOR" -lt 11 ]; then
    FLAGS+=(--useCudaGraph --noDataTransfers --useSpinWait)
fi
if ! trtexec "${FLAGS[@]}" >"$WORK/trtexec.log" 2>&1; then
    tail -n 20 "$WORK/trtexec.log" >&2
    die "trtexec failed on latbench's engine (above); is trtexec from the same TensorRT version" \
        "as the Python package (${TRT_MAJOR}.x)?"
fi
# trtexec's summary line: "GPU Compute Time: min = a ms, max = b ms, mean = c ms, median = d ms, ..."
SUMMARY='s/.*GPU Compute Time: min = [^,]*, max = [^,]*, mean = [^,]*, median = ([0-9.eE+-]+) ms.*/\1/p'
TRTEXEC_MS=$(sed -nE "$SUMMARY" "$WORK/trtexec.log" | head -n 1)
[ -n "$TRTEXEC_MS" ] || die "no 'GPU Compute Time ... median' line in trtexec's output"

awk -v key="$KEY" -v p="$PRECISION" -v lb="$LB_US" -v u="$LB_UNROLL" -v te="$TRTEXEC_MS" -v rf="$REFORMAT" 'BEGIN {
    printf "block            %s (%s, batch 1)\n", key, p
    printf "latbench median  %10.2f us  (harness, CUDA graph of %d runs, warm)\n", lb, u
    printf "trtexec median   %10.2f us  (GPU Compute Time, same plan)\n", te * 1000
    printf "trtexec/latbench %10.3f\n", te * 1000 / lb
    printf "reformat at I/O  %s\n", rf
}'
