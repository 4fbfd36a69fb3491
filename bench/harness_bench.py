"""latbench's timing harness against its peers, on the same blocks in one run.

Blocks: GPUNet-1's distinct blocks, then factor-grid variants (every block kind), the first
`--blocks`. For each block a long reference measurement (latbench's harness, warm protocol, long
settings), then `--repeats` rounds; each round prepares every method afresh (module built, weights
moved, graph captured) and takes one median from it. Per method and block:

* s_per_key: seconds per key, preparation plus timing (mean over the rounds). The reference runs
  first, so cuDNN's process-wide autotuning cache already holds the block: build-table pays that
  autotuning once more per new key;
* cov: CoV of the median over the fresh preparations (std / mean of the rounds' medians);
* vs_reference: median of the rounds' medians / reference - 1. For the cold protocols this is the
  cost of cold caches, not an error: the reference and the peers all replay warm weights.

Methods:

* latbench, once per cache protocol of `--protocols` (backend.prepare + rows.measure_quietly with
  the GPU clock / CPU contention monitor, as build-table runs it);
* cuda-graph loop (GPU): the BN-folded channels_last module (fp16 by default) in one CUDA graph that
  replays it U times, U chosen by a small probe graph so one replay lasts about 2 ms; CUDA events
  around a few replays, median;
* triton do_bench_cudagraph(rep=20, return_mode="median") (GPU, when triton imports);
* torch.utils.benchmark Timer.blocked_autorange(min_run_time=0.2): eager module calls.

Targets. GPU: latbench <= 0.1 s/key warm and <= 0.15 s/key with the cold protocols (aim: 0.03 s),
CoV of the median <= 0.5 % over fresh preparations. CPU: CoV <= 3 % on blocks over 1 ms.

One line is printed per block as it finishes and a summary table ends the output. `--jsonl`
writes a header line, one row line per block as soon as it finishes (flushed and fsynced: a run
killed part-way keeps its finished rows) and a summary line; `--json` writes the same records as
one document, replaced after every block. SIGINT or SIGTERM stops the run after the block in
progress, with the summary of the finished ones (exit code 130); a second signal stops it at once.

    python bench/harness_bench.py --device cpu                      # CPU: fp32, warm protocol
    python bench/harness_bench.py --device cuda --budget-s 55 --jsonl OUT/harness_bench.jsonl
    python bench/harness_bench.py --device cpu --quick --blocks 2   # rehearsal (the test suite)

The GPU session runner (latbench.session, step "harness") runs it with --jsonl and --budget-s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Callable

# The budget counts from process start: importing torch and initialising CUDA cost seconds too.
_STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import latbench  # noqa: E402
from latbench import backends, env, load_arch  # noqa: E402
from latbench.backends.base import BackendConfig  # noqa: E402
from latbench.rows import measure_quietly, monitor_for  # noqa: E402
from latbench.builders import example_input  # noqa: E402
from latbench.errors import LatbenchError  # noqa: E402
from latbench.harness import HarnessSettings, measure  # noqa: E402
from latbench.keysets import grid_specs, unique  # noqa: E402
from latbench.builders import inference_model  # noqa: E402
from latbench.precision import torch_dtype  # noqa: E402
from latbench.spec import BlockSpec  # noqa: E402

#: A method: block -> (median per execution in us, seconds spent preparing and timing it).
Method = Callable[[BlockSpec], tuple[float, float]]

#: One replay of the plain loop's graph lasts about this long: the launch (a few us) is then
#: below 0.5 % of it (the protocol of the H200 baseline in the project's measurement notes).
GRAPH_REPLAY_S = 0.002
GRAPH_PROBE_CALLS = 16
#: Bounds the capture time of blocks of a few us (each captured call costs host time).
GRAPH_MAX_CALLS = 4096
GRAPH_REPLAYS = 7
WARMUP_CALLS = 3
TRITON_REP_MS = 20
AUTORANGE_S = 0.2

GPU_S_PER_KEY = {"warm": 0.1, "weights-cold": 0.15, "cold": 0.15}
GPU_MAX_COV = 0.005
CPU_MAX_COV = 0.03
CPU_LONG_US = 1000.0

UNITS = {"reference_us": "us", "median_us": "us", "cov": "fraction (std/mean of the repeats' medians)",
         "s_per_key": "s (preparation + timing, mean over repeats)",
         "vs_reference": "fraction (median_us / reference_us - 1)", "block_s": "s"}


def block_set(n: int) -> list[BlockSpec]:
    """GPUNet-1's distinct blocks, then factor-grid variants (all kinds): the first `n`."""
    return unique(list(load_arch("gpunet-1").blocks) + grid_specs("factor_grid"))[:n]


def reason(err: BaseException) -> str:
    """One line: the exception type and the first line of its message."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__


def free_gpu_memory() -> None:
    """After a failure (often out of memory) give the cached blocks back before the next method."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- methods -------------------------------------------------------------------------------------

def latbench_method(backend, settings: HarnessSettings) -> Method:
    """latbench as build-table runs it: a fresh preparation, the monitor, the contention retries."""
    monitor = monitor_for(backend.config)

    def run(spec: BlockSpec) -> tuple[float, float]:
        t0 = time.perf_counter()
        with backend.prepare(spec) as exe:
            m, _ = measure_quietly(exe, settings, monitor)
        return m.median_us, time.perf_counter() - t0

    return run


def reference_method(backend, settings: HarnessSettings) -> Callable[[BlockSpec], float]:
    """A long measurement of the block by latbench's harness (warm protocol, no monitor)."""

    def run(spec: BlockSpec) -> float:
        with backend.prepare(spec) as exe:
            return measure(exe, settings)[0].median_us

    return run


def peer_module(spec: BlockSpec, device: str, dtype: torch.dtype):
    """The module and input latbench's torch backend times: BN folded, channels_last."""
    model = inference_model(spec).to(device=device, dtype=dtype, memory_format=torch.channels_last)
    return model, example_input(spec, 1, device, dtype, channels_last=True)


def warm_up(model, x, stream) -> None:
    """Eager calls on the capture stream before capture, as torch's CUDA-graph notes require:
    cuDNN autotuning (cudnn.benchmark), handle creation and lazy initialisation must not happen
    inside a capture. Call under the same inference_mode as the capture."""
    stream.wait_stream(torch.cuda.current_stream())  # x was written on the current stream
    with torch.cuda.stream(stream):
        for _ in range(WARMUP_CALLS):
            model(x)
    torch.cuda.current_stream().wait_stream(stream)


def capture(model, x, calls: int, stream) -> torch.cuda.CUDAGraph:
    """One graph calling `model` on the static input `x` `calls` times. The outputs are dropped:
    their memory stays in the graph's private pool, which later calls reuse."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(calls):
            model(x)
    return graph


def replay_seconds(graph: torch.cuda.CUDAGraph, n: int) -> list[float]:
    """GPU seconds of each of `n` back-to-back replays, by CUDA events on the current stream."""
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(n)]
    for start, end in events:
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) * 1e-3 for start, end in events]


def graph_loop_method(dtype: torch.dtype) -> Method:
    """The plain CUDA-graph loop: probe graph, then one graph of U calls lasting ~2 ms a replay."""

    def run(spec: BlockSpec) -> tuple[float, float]:
        t0 = time.perf_counter()
        model, x = peer_module(spec, "cuda", dtype)
        stream = torch.cuda.Stream()  # warm-up and capture on one stream: its handles are made
        with torch.inference_mode():
            warm_up(model, x, stream)
            probe = capture(model, x, GRAPH_PROBE_CALLS, stream)
            probe.replay()  # the first replay uploads the graph: not a sample
            per_call = float(np.median(replay_seconds(probe, 3))) / GRAPH_PROBE_CALLS
            del probe
            calls = min(GRAPH_MAX_CALLS, max(1, math.ceil(GRAPH_REPLAY_S / max(per_call, 1e-9))))
            graph = capture(model, x, calls, stream)
            graph.replay()
            per_call = float(np.median(replay_seconds(graph, GRAPH_REPLAYS))) / calls
        return per_call * 1e6, time.perf_counter() - t0

    return run


def triton_method(dtype: torch.dtype) -> Method:
    """triton.testing.do_bench_cudagraph; raises at build time when triton is unusable."""
    import inspect

    from triton.testing import do_bench_cudagraph

    if "return_mode" not in inspect.signature(do_bench_cudagraph).parameters:
        raise ImportError("this triton's do_bench_cudagraph has no return_mode (too old)")

    def run(spec: BlockSpec) -> tuple[float, float]:
        t0 = time.perf_counter()
        model, x = peer_module(spec, "cuda", dtype)
        stream = torch.cuda.Stream()
        with torch.inference_mode():
            warm_up(model, x, stream)  # triton warms up with one call only: no autotuning in capture
            # Older tritons refuse to capture from the default stream; newer ones make their own.
            with torch.cuda.stream(stream):
                ms = do_bench_cudagraph(lambda: model(x), rep=TRITON_REP_MS, return_mode="median")
        return ms * 1e3, time.perf_counter() - t0

    return run


def autorange_method(device: str, dtype: torch.dtype) -> Method:
    """torch.utils.benchmark's Timer.blocked_autorange over eager calls (host clock; it
    synchronises CUDA around each block of calls)."""
    from torch.utils.benchmark import Timer

    def run(spec: BlockSpec) -> tuple[float, float]:
        t0 = time.perf_counter()
        model, x = peer_module(spec, device, dtype)
        # Timer pins its own thread count (default 1): keep the one latbench measures with.
        timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
        with torch.inference_mode():
            r = timer.blocked_autorange(min_run_time=AUTORANGE_S)
        return r.median * 1e6, time.perf_counter() - t0

    return run


def peer_methods(device: str, dtype: torch.dtype) -> tuple[dict[str, Method], dict[str, str]]:
    """The peers usable here, and those dropped at import time with their reason."""
    builders = {"torch.utils.benchmark": lambda: autorange_method(device, dtype)}
    if device == "cuda":
        builders = {"cuda-graph loop": lambda: graph_loop_method(dtype),
                    "triton do_bench_cudagraph": lambda: triton_method(dtype)} | builders
    methods, dropped = {}, {}
    for name, build in builders.items():
        try:
            methods[name] = build()
        except Exception as err:  # noqa: BLE001 - any import failure drops only that peer
            dropped[name] = reason(err)
    return methods, dropped


# --- one block -----------------------------------------------------------------------------------

def method_stats(runs: list[tuple[float, float]], reference_us: float | None) -> dict:
    """median_us, cov, s_per_key and vs_reference of one method's repeats on one block."""
    medians = np.array([r[0] for r in runs])
    median = float(np.median(medians))
    return {"median_us": median,
            "cov": float(medians.std(ddof=1) / medians.mean()),
            "s_per_key": float(np.mean([r[1] for r in runs])),
            "vs_reference": median / reference_us - 1 if reference_us else None}


def bench_block(spec: BlockSpec, reference, methods: dict[str, Method], repeats: int) -> dict:
    """The reference, then `repeats` rounds over every method; a failing method becomes an error
    entry in the row and the others go on."""
    row = {"type": "row", "key": spec.key, "reference_us": None}
    try:
        row["reference_us"] = reference(spec)
    except Exception as err:  # noqa: BLE001 - recorded in the row; the methods still run
        row["reference_error"] = reason(err)
        free_gpu_memory()
    runs = {name: [] for name in methods}
    errors: dict[str, str] = {}
    # Rounds interleave the methods so that slow drift (clocks, temperature, other load) spreads
    # over all of them instead of favouring whichever ran first.
    for _ in range(repeats):
        for name, run in methods.items():
            if name in errors:
                continue
            try:
                runs[name].append(run(spec))
            except Exception as err:  # noqa: BLE001 - one method's failure is recorded, not fatal
                errors[name] = reason(err)
                free_gpu_memory()
    for name in methods:
        row[name] = ({"error": errors[name]} if name in errors
                     else method_stats(runs[name], row["reference_us"]))
    return row


def row_line(index: int, total: int, row: dict, methods) -> str:
    """The printed line of a finished block."""
    ref = row["reference_us"]
    parts = [f"[{index}/{total}] {row['key']}",
             f"ref {ref:.2f} us" if ref else f"ref error ({row['reference_error']})"]
    for name in methods:
        r = row[name]
        if "error" in r:
            parts.append(f"{name}: error ({r['error']})")
            continue
        vs = f" {r['vs_reference'] * 100:+.2f} %" if r["vs_reference"] is not None else ""
        parts.append(f"{name}: {r['median_us']:.2f} us CoV {r['cov'] * 100:.2f} % "
                     f"{r['s_per_key']:.3f} s/key{vs}")
    return " | ".join(parts) + f" | {row['block_s']:.1f} s"


# --- summary -------------------------------------------------------------------------------------

def ok_entries(rows: list[dict], name: str) -> list[dict]:
    return [r[name] for r in rows if "median_us" in r[name]]


def method_summary(rows: list[dict], name: str) -> dict:
    """Mean s/key, median and max CoV, median |vs reference|, blocks measured and failed."""
    ok = ok_entries(rows, name)
    covs = [e["cov"] for e in ok]
    dist = [abs(e["vs_reference"]) for e in ok if e["vs_reference"] is not None]
    return {"blocks": len(ok), "errors": len(rows) - len(ok),
            "s_per_key": float(np.mean([e["s_per_key"] for e in ok])) if ok else None,
            "cov_median": float(np.median(covs)) if covs else None,
            "cov_max": float(max(covs)) if covs else None,
            "vs_reference_median_abs": float(np.median(dist)) if dist else None}


def targets(rows: list[dict], device: str, protocols: list[str], summaries: dict) -> list[dict]:
    """The module docstring's targets, checked for each latbench protocol ("met": None where no
    block qualifies)."""
    out = []
    for protocol in protocols:
        name = f"latbench {protocol}"
        if device == "cuda":
            limit, s = GPU_S_PER_KEY[protocol], summaries[name]["s_per_key"]
            out.append({"method": name, "target": f"s/key <= {limit} s", "value": s,
                        "met": None if s is None else s <= limit})
            covs = [e["cov"] for e in ok_entries(rows, name)]
            limit_cov, text = GPU_MAX_COV, "CoV <= 0.5 %"
        else:
            covs = [r[name]["cov"] for r in rows
                    if "median_us" in r[name] and (r["reference_us"] or 0) > CPU_LONG_US]
            limit_cov, text = CPU_MAX_COV, "CoV <= 3 % on blocks over 1 ms"
        within = sum(c <= limit_cov for c in covs)
        out.append({"method": name, "target": text, "value": f"{within}/{len(covs)} blocks",
                    "met": within == len(covs) if covs else None,
                    "cov_median": float(np.median(covs)) if covs else None,
                    "cov_max": float(max(covs)) if covs else None})
    return out


VERDICT = {True: "met", False: "MISSED", None: "no block to judge"}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f} %"


def print_summary(summary: dict, header: dict) -> None:
    """The closing table: it must end the output (the session runner keeps only the tail)."""
    print(f"\nsummary: {summary['blocks_done']}/{summary['blocks_planned']} blocks in "
          f"{summary['elapsed_s']:.1f} s ({header['device']['name']}, {header['precision']}, batch 1, "
          f"{header['repeats']} fresh preparations per method and block)")
    if summary["stopped"]:
        print(f"stopped early: {summary['stopped']}")
    for name, why in header["dropped"].items():
        print(f"dropped: {name} ({why})")
    print(f"{'method':28s} {'s/key':>9s} {'CoV median':>11s} {'CoV max':>9s} {'|vs ref| median':>16s} "
          f"{'errors':>7s}")
    for name, m in summary["methods"].items():
        s = "-" if m["s_per_key"] is None else f"{m['s_per_key']:.3f} s"
        print(f"{name:28s} {s:>9s} {pct(m['cov_median']):>11s} {pct(m['cov_max']):>9s} "
              f"{pct(m['vs_reference_median_abs']):>16s} {m['errors']:>7d}")
    for t in summary["targets"]:
        value = f"{t['value']:.3f} s" if isinstance(t["value"], float) else t["value"] or "-"
        extra = (f" (median {pct(t['cov_median'])}, max {pct(t['cov_max'])})"
                 if t.get("cov_median") is not None else "")
        print(f"target {t['method']}: {t['target']}: {value}{extra}: {VERDICT[t['met']]}")


# --- output files --------------------------------------------------------------------------------

class Results:
    """The run's records. `--jsonl`: one line each, flushed and fsynced as soon as written, so a
    killed run keeps every finished row. `--json`: the same records as one document
    ({"header", "rows", "summary"}), replaced atomically after each record."""

    def __init__(self, jsonl: str | None, json_path: str | None):
        self.records: list[dict] = []
        self.json_path = Path(json_path) if json_path else None
        self.jsonl = open(jsonl, "w", encoding="utf-8") if jsonl else None

    def add(self, record: dict) -> None:
        self.records.append(record)
        if self.jsonl:
            self.jsonl.write(json.dumps(record) + "\n")
            self.jsonl.flush()
            os.fsync(self.jsonl.fileno())
        if self.json_path:
            doc = {"header": self.records[0], "rows": [r for r in self.records if r["type"] == "row"],
                   "summary": next((r for r in self.records if r["type"] == "summary"), None)}
            tmp = self.json_path.with_name(self.json_path.name + ".tmp")
            tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
            os.replace(tmp, self.json_path)

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if cuda else "cpu",
                    help="default: cuda when torch sees a GPU")
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"),
                    help="default: fp16 on cuda, fp32 on cpu")
    ap.add_argument("--blocks", type=int, default=24, help="the first N blocks of the set (default 24)")
    ap.add_argument("--repeats", type=int, default=5, help="fresh preparations per method and block (>= 2)")
    ap.add_argument("--protocols", help="latbench cache protocols, comma-separated (warm, weights-cold, "
                                        "cold); default: warm,weights-cold on cuda, warm on cpu")
    ap.add_argument("--budget-s", type=float, help="start no block that would end past S seconds "
                                                   "(estimate: elapsed + the mean block so far)")
    ap.add_argument("--quick", action="store_true", help="quick harness settings and a short "
                                                         "reference (rehearsals, tests)")
    ap.add_argument("--jsonl", help="header, one row per finished block (fsynced), summary")
    ap.add_argument("--json", help="the same records as one JSON document, rewritten after each block")
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be at least 2 (the CoV needs two medians)")
    if args.blocks < 1:
        ap.error("--blocks must be at least 1")
    args.precision = args.precision or ("fp16" if args.device == "cuda" else "fp32")
    default = "warm,weights-cold" if args.device == "cuda" else "warm"
    names = (p.strip() for p in (args.protocols or default).split(","))
    args.protocols = list(dict.fromkeys(p for p in names if p))
    if not args.protocols:
        ap.error("--protocols names no protocol")
    return args


def reference_settings(device: str, quick: bool) -> HarnessSettings:
    """Longer samples and more of them than a table row gets. GPU samples agree to ~0.02 %
    (the project's H200 measurement notes), so 0.5 s is plenty there; CPU samples need seconds."""
    base = HarnessSettings.for_device(device, quick=quick)
    min_time = {("cpu", False): 3.0, ("cuda", False): 0.5, ("cpu", True): 0.3, ("cuda", True): 0.1}
    return replace(base, sample_s=base.sample_s * (2 if quick else 5), min_samples=11 if quick else 25,
                   min_time_s=min_time[device, quick])


def over_budget(budget_s: float | None, block_s: list[float], done: int, total: int) -> str | None:
    """Why no further block should start, or None."""
    if budget_s is None or not block_s:
        return None
    elapsed, mean = time.perf_counter() - _STARTED, float(np.mean(block_s))
    if elapsed + mean <= budget_s:
        return None
    return (f"budget: stopped after {done} of {total} blocks: {elapsed:.1f} s elapsed + {mean:.1f} s "
            f"a block would pass --budget-s {budget_s:g} s")


def setup(args, specs: list[BlockSpec]) -> tuple[dict[str, Method], Callable, dict]:
    """Backends and methods; returns (methods, reference, header line)."""
    config = partial(BackendConfig, device=args.device, precision=args.precision)
    settings = HarnessSettings.for_device(args.device, quick=args.quick)
    ref_settings = reference_settings(args.device, args.quick)
    reference = reference_method(backends.create("torch", config(protocol="warm")), ref_settings)
    methods = {f"latbench {p}": latbench_method(backends.create("torch", config(protocol=p)), settings)
               for p in args.protocols}
    if args.device == "cuda":
        # The torch backend has set cuDNN to its heuristics (process-wide, as latbench's tables are
        # measured): the peers run the same kernels, so the comparison is of the timing alone.
        device = env.cuda_device_info() | {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
    else:
        # Peers run in this process at latbench's CPU thread count, whatever its backend does.
        torch.set_num_threads(config(protocol="warm").cpu_threads)
        device = env.cpu_device_info(torch.get_num_threads())
    peers, dropped = peer_methods(args.device, torch_dtype(args.precision))
    methods |= peers
    header = {"type": "header", "device": device, "torch": torch.__version__,
              "latbench": latbench.__version__, "precision": args.precision, "batch": 1,
              "methods": list(methods), "dropped": dropped, "protocols": args.protocols,
              "repeats": args.repeats, "blocks": [s.key for s in specs], "quick": args.quick,
              "budget_s": args.budget_s, "harness": asdict(settings),
              "reference_harness": asdict(ref_settings), "units": UNITS}
    return methods, reference, header


class StopSignals:
    """SIGINT and SIGTERM (a session runner's time limit) ask the run to stop after the block in
    progress, so no preparation or graph capture is cut half-way and that block is kept; a second
    signal stops it at once. The handler only records: printing from it could re-enter a print."""

    def __init__(self):
        self.name: str | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.name:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name


def run_blocks(specs: list[BlockSpec], reference, methods: dict[str, Method], args,
               results: Results, stop: StopSignals) -> tuple[list[dict], str | None]:
    """Bench block after block, recording and printing each as it finishes, until a signal or the
    budget stops it; returns the rows and why it stopped early (None when it did not)."""
    rows, block_s = [], []
    try:
        for i, spec in enumerate(specs, 1):
            stopped = (f"{stop.name}: stopped after {len(rows)} of {len(specs)} blocks" if stop.name
                       else over_budget(args.budget_s, block_s, len(rows), len(specs)))
            if stopped:
                print(stopped)
                return rows, stopped
            t0 = time.perf_counter()
            row = bench_block(spec, reference, methods, args.repeats)
            block_s.append(time.perf_counter() - t0)
            row["block_s"] = block_s[-1]
            results.add(row)
            rows.append(row)
            print(row_line(i, len(specs), row, methods))
    except KeyboardInterrupt:
        stopped = f"{stop.name}, then a second signal: stopped during block {len(rows) + 1} of {len(specs)}"
        print(stopped)
        return rows, stopped
    return rows, None


def main(argv=None) -> int:
    # The output is piped to a log whose tail is kept: every line must leave as it is printed.
    sys.stdout.reconfigure(line_buffering=True)
    stop = StopSignals()
    args = parse_args(argv)
    specs = block_set(args.blocks)
    try:
        methods, reference, header = setup(args, specs)
    except LatbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = Results(args.jsonl, args.json)
    results.add(header)
    print(f"device: {header['device']['name']} ({args.device}), torch {torch.__version__}, "
          f"{args.precision}, batch 1; methods: {', '.join(methods)}; {args.repeats} repeats; "
          f"{len(specs)} blocks" + (f"; budget {args.budget_s:g} s" if args.budget_s is not None else ""))
    for name, why in header["dropped"].items():
        print(f"dropped: {name} ({why})")
    rows, stopped = run_blocks(specs, reference, methods, args, results, stop)
    summaries = {name: method_summary(rows, name) for name in methods}
    summary = {"type": "summary", "blocks_done": len(rows), "blocks_planned": len(specs),
               "stopped": stopped, "elapsed_s": time.perf_counter() - _STARTED, "methods": summaries,
               "targets": targets(rows, args.device, args.protocols, summaries)}
    results.add(summary)
    results.close()
    print_summary(summary, header)
    return 130 if stop.name else 0


if __name__ == "__main__":
    sys.exit(main())
