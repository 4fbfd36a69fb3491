"""Throughput of whole-network prediction: vectorised screening vs a per-network Python loop.

Prints networks per second for `Predictor.screen` over N encoded GPUNet networks (int8, as pools
store them) and for a plain loop that decodes and predicts one network at a time, the one-off
cost of preparing the space's look-up tables, and checks that both paths agree exactly.
Target (issue 5): >= 1,000,000 networks/s on one core. Run pinned to one core:

    taskset -c 0 python bench/predict_bench.py --table tables/cpu-torch-fp32-b1.jsonl
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: no BLAS threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from latbench.env import cpu_name  # noqa: E402
from latbench.predictor import Predictor  # noqa: E402
from latbench.table import load_table  # noqa: E402
from latbench.space import load_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--space", default="gpunet")
    ap.add_argument("--n", type=int, default=1 << 20, help="networks for the vectorised path")
    ap.add_argument("--loop", type=int, default=2000, help="networks for the per-network loop")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    space = load_space(args.space)
    table = load_table(args.table)
    t0 = time.perf_counter()
    pred = Predictor(table, space)
    pred.screen(space.random(1, 0))  # builds the space index and its look-up tables
    setup = time.perf_counter() - t0
    X = space.random(args.n, 1).astype(np.int8)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        lat, frac = pred.screen(X)
        best = min(best, time.perf_counter() - t0)
    Xl = X[: args.loop].astype(np.int64)
    t0 = time.perf_counter()
    loop = np.array([pred.predict(space.decode(x), missing="estimate").latency_ms for x in Xl])
    loop_s = time.perf_counter() - t0
    exact = np.array_equal(loop, lat[: args.loop])
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} usable core(s); numpy {np.__version__}")
    print(f"table: {args.table} ({table.describe()}); {len(table.ok())} measured rows; "
          f"calibrated: {table.calibration is not None}")
    print(f"space {space.name}: one-off index + look-up tables {setup:.2f} s")
    print(f"vectorised: {args.n:,} networks in {best:.3f} s (best of {args.repeat}) = {args.n / best:,.0f} networks/s")
    print(f"per-network loop: {args.loop:,} networks in {loop_s:.2f} s = {args.loop / loop_s:,.0f} networks/s")
    print(f"speed-up {args.n / best / (args.loop / loop_s):,.0f}x; identical predictions: {exact}; "
          f"mean measured fraction {frac.mean():.3f}")


if __name__ == "__main__":
    main()
