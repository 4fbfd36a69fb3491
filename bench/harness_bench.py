"""latbench's timing harness against its peers, per block of a fixed set of 24 GPUNet blocks.

For each block and method: seconds spent per key (preparation included), CoV of the median over
`--repeats` independent measurements, and distance of their mean from a long reference
measurement of the same prepared block. Methods: latbench's harness; torch.utils.benchmark's
Timer.blocked_autorange (eager module calls); on a GPU also triton.testing.do_bench_cudagraph when
triton is installed. Targets (issue 3): on GPU <= 0.02 s per key at CoV <= 0.1 %, ahead of both
peers; on a 2-core CPU CoV <= 3 % for blocks over 1 ms.

    python bench/harness_bench.py --device cpu          # this machine
    python bench/harness_bench.py --device cuda         # a GPU machine (fp16)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from latbench import backends, env, load_arch
from latbench.backends.base import BackendConfig
from latbench.build import measure_quietly, monitor_for
from latbench.builders import example_input
from latbench.harness import HarnessSettings, measure
from latbench.keysets import grid_specs, unique
from latbench.onnx_export import inference_model, torch_dtype


def block_set() -> list:
    """GPUNet-1's distinct blocks plus factor-study variants: 24 blocks, all kinds."""
    specs = unique(list(load_arch("gpunet-1").blocks) + grid_specs("factor_grid"))
    return specs[:24]


def bench_ours(be, spec, settings, monitor) -> tuple[float, float]:
    """latbench's protocol as build-table runs it (with the GPU/CPU monitor and its retries)."""
    t0 = time.perf_counter()
    with be.prepare(spec) as exe:
        m, _ = measure_quietly(exe, settings, monitor)
    return m.median_us, time.perf_counter() - t0


def bench_autorange(spec, device, dtype) -> tuple[float, float]:
    from torch.utils.benchmark import Timer

    t0 = time.perf_counter()
    m = inference_model(spec).to(device=device, dtype=dtype).to(memory_format=torch.channels_last)
    x = example_input(spec, 1, device, dtype)
    with torch.inference_mode():
        r = Timer("m(x)", globals={"m": m, "x": x}).blocked_autorange(min_run_time=0.2)
    return r.median * 1e6, time.perf_counter() - t0


def bench_triton(spec, dtype) -> tuple[float, float]:
    from triton.testing import do_bench_cudagraph

    t0 = time.perf_counter()
    m = inference_model(spec).to(device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    x = example_input(spec, 1, "cuda", dtype)
    with torch.inference_mode():
        ms = do_bench_cudagraph(lambda: m(x), rep=20, return_mode="median")
    return ms * 1e3, time.perf_counter() - t0


def reference(be, spec, device) -> float:
    """A long, quiet measurement of the same prepared block."""
    long = HarnessSettings.for_device(device)
    long = replace(long, sample_s=long.sample_s * 5, min_samples=25, min_time_s=3.0 if device == "cpu" else 1.0)
    with be.prepare(spec) as exe:
        return measure(exe, long)[0].median_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="also write the per-block results here")
    args = ap.parse_args()
    precision = "fp16" if args.device == "cuda" else "fp32"
    dtype = torch_dtype(precision)
    be = backends.create("torch", BackendConfig(device=args.device, precision=precision, protocol="warm"))
    settings = HarnessSettings.for_device(args.device)
    monitor = monitor_for(be.config)
    methods = {"latbench": lambda s: bench_ours(be, s, settings, monitor),
               "torch.utils.benchmark": lambda s: bench_autorange(s, args.device, dtype)}
    if args.device == "cuda":
        try:
            import triton.testing  # noqa: F401

            methods["triton do_bench_cudagraph"] = lambda s: bench_triton(s, dtype)
        except ImportError:
            pass
    dev = env.cuda_device_info() if args.device == "cuda" else env.cpu_device_info(be.threads)
    print(f"device: {dev['name']} ({args.device}), torch {torch.__version__}, {precision}, batch 1, "
          f"cache protocol warm; {args.repeats} repeats per method")
    rows = []
    for spec in block_set():
        ref = reference(be, spec, args.device)
        row = {"key": spec.key, "reference_us": ref}
        for name, fn in methods.items():
            runs = [fn(spec) for _ in range(args.repeats)]
            med = np.array([r[0] for r in runs])
            row[name] = {"median_us": float(np.median(med)), "cov": float(med.std(ddof=1) / med.mean()),
                         "s_per_key": float(np.mean([r[1] for r in runs])),
                         "vs_reference": float(med.mean() / ref - 1)}
        rows.append(row)
        print(f"{spec.key:48s} ref {ref:10.2f} us  " + "  ".join(
            f"{n.split()[0]}: {row[n]['median_us']:9.2f} us cov {row[n]['cov'] * 100:5.2f}% "
            f"{row[n]['s_per_key']:.3f} s/key" for n in methods))
    print("\nsummary (mean s/key | median CoV | median |distance from reference|):")
    for n in methods:
        s = np.mean([r[n]["s_per_key"] for r in rows])
        c = np.median([r[n]["cov"] for r in rows]) * 100
        d = np.median([abs(r[n]["vs_reference"]) for r in rows]) * 100
        print(f"  {n:28s} {s:.3f} s/key | CoV {c:.2f} % | {d:.2f} %")
    big = [r for r in rows if r["reference_us"] > 1000]
    if big:
        print(f"  latbench on the {len(big)} blocks over 1 ms: median CoV "
              f"{np.median([r['latbench']['cov'] for r in big]) * 100:.2f} %, max "
              f"{max(r['latbench']['cov'] for r in big) * 100:.2f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": dev, "precision": precision, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
