"""The steps of a session, each run in a process of its own by the runner (latbench.session).

A step reads the session context (work/context.json: the plan and the costs measured so far),
works until its deadline, writes what it produced into the work folder (the table grows in place;
reports are rewritten whole after each part) and its result into work/steps/NAME.json, rewritten
after each key or network it times (`Context.note`). A step in its own process cannot leave a
broken CUDA context or a stuck kernel to the next one, and a step that is killed loses only the
key or network in hand.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from latbench import backends
from latbench.arch_io import load_arch
from latbench.backends.base import PROTOCOLS, BackendConfig, target_bytes
from latbench.build import BuildSummary, build_table, record
from latbench.provenance import default_table_name, table_meta
from latbench.rows import measure_quietly, measure_row, monitor_for, row_facts
from latbench.errors import LatbenchError, TableError
from latbench.harness import HarnessSettings
from latbench.keysets import arch_specs, grid_specs, sample_specs, unique
from latbench.files import write_json
from latbench.session import write_part
from latbench.session.plan import Plan
from latbench.table import TableWriter, identity, identity_diff, load_table
from latbench.space import load_space, sample_archs
from latbench.validate import network_id, networks_log, read_networks, validate, whole_network_backend


@dataclass
class Context:
    """What a step knows: the plan, the work folder, the repository, its deadline
    (time.monotonic() seconds) and the costs measured by earlier steps (seconds)."""

    plan: Plan
    work: Path
    repo: Path
    tables: Path
    deadline: float
    costs: dict
    name: str = "step"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        print(text, flush=True)

    def note(self, result: dict) -> None:
        """The step's result so far, in work/steps/NAME.json (atomic): a step killed at its limit
        still leaves what it learned (costs, timings) to the runner."""
        write_result(self.work, self.name, result)


def write_result(work: Path, name: str, result: dict) -> None:
    (work / "steps").mkdir(exist_ok=True)
    write_json(work / "steps" / f"{name}.json", result)


def open_table(ctx: Context):
    """(backend, settings, table path in the work folder) for this machine.

    The table committed in tables/ under the same name is resumed when its identity matches
    this machine's (GPU model, driver major, CUDA, torch, backend settings). One that does not is
    left alone, and the table of this identity is NAME-<identity hash>.jsonl beside it: resumed
    as well when an earlier session committed it, else started.
    """
    plan = ctx.plan
    config = BackendConfig.for_device(plan.device, plan.precision, plan.protocol)
    be = backends.create("torch", config)
    settings = HarnessSettings.for_device(plan.device, quick=plan.quick)
    meta = table_meta(be, settings)
    name = Path(default_table_name(meta)).name
    committed = ctx.tables / name
    diff = identity_diff(load_table(committed).meta, meta) if committed.is_file() else []
    if diff:
        digest = hashlib.sha1(json.dumps(identity(meta), sort_keys=True, default=str).encode()).hexdigest()[:8]
        if not (ctx.work / f"{Path(name).stem}-{digest}.jsonl").exists():
            ctx.say(f"{committed}: other settings ({'; '.join(diff)}); "
                    f"this machine's table is {Path(name).stem}-{digest}.jsonl")
        name = f"{Path(name).stem}-{digest}.jsonl"
        committed = ctx.tables / name
    path = ctx.work / name
    if not path.exists() and committed.is_file():
        for src in (committed, networks_file(committed)):
            if src.is_file():
                shutil.copy2(src, ctx.work / src.name)
        ctx.say(f"resuming {committed} ({len(load_table(path).rows)} rows)")
    TableWriter(path, meta)  # creates the table, or refuses one of other settings
    (ctx.work / "table.json").write_text(json.dumps({"name": path.name}))
    return be, settings, path


def networks_file(table: Path) -> Path:
    return table.with_name(table.name.removesuffix(".jsonl") + ".networks.jsonl")


def space(ctx: Context):
    return load_space(ctx.plan.space)


def reference_archs(ctx: Context) -> list:
    sp = space(ctx)
    return [load_arch(r, sp) for r in ctx.plan.reference]


def summary_dict(summary: BuildSummary) -> dict:
    return {"keys": summary.total, "measured": summary.measured, "already": summary.skipped,
            "failed": summary.failed, "left": summary.left, "s_per_key": summary.s_per_key,
            "median_s_per_key": float(np.median(summary.seconds)) if summary.seconds else None}


# -- steps ---------------------------------------------------------------------------------------
#: Seconds the smoke step keeps for its one network (capture and timing of a whole GPUNet)
#: before it takes another key.
SMOKE_NETWORK_RESERVE_S = 10.0


def step_smoke(ctx: Context) -> dict:
    """Machine and versions; time a few keys and one network to learn what a key costs here."""
    import torch

    ctx.say(f"python {platform.python_version()}, torch {torch.__version__}, "
            f"cuda {torch.version.cuda}, gpu {torch.cuda.is_available()}")
    be, settings, path = open_table(ctx)
    table = load_table(path)
    had_calibration = table.calibration is not None
    meta = table_meta(be, settings)
    ctx.say(f"table {path.name}: {table.describe()}; {len(table.rows)} rows")
    specs = arch_specs(ctx.plan.reference[1:2] or ctx.plan.reference, space(ctx))[:ctx.plan.smoke_keys]
    writer, summary, monitor = TableWriter(path, meta), BuildSummary(total=len(specs)), monitor_for(be.config)
    facts = row_facts(be.config)
    result = {"table": path.name, "device": meta["device"], "backend": meta["backend"],
              "rows_at_start": len(table.rows), "calibrated_at_start": had_calibration, "smoke_keys": []}
    ctx.note(result)
    for spec in specs:  # timed even when the table has them: the cost is what is learned here
        # The first key pays for the CUDA context and the libraries' loading: the cost of a key
        # is learned from the others, and the time check starts with them.
        if len(summary.seconds) >= 2 and ctx.left() < 3 * summary.seconds[-1] + SMOKE_NETWORK_RESERVE_S:
            ctx.say(f"  {len(specs) - len(summary.seconds)} smoke keys left out: the network needs the time left")
            break
        t0 = time.perf_counter()
        row = measure_row(be, spec, settings, monitor) | facts
        summary.seconds.append(time.perf_counter() - t0)
        if spec.key not in writer.done():
            record(writer, row, summary)
        ctx.say(f"  {spec.key}: {row.get('median_us') or row.get('reason')} us, "
                f"{summary.seconds[-1]:.3f} s")
        warm = summary.seconds[1:] or summary.seconds
        result |= {"s_per_key": float(np.mean(warm)), "first_key_s": summary.seconds[0],
                   "smoke_keys": result["smoke_keys"] + [spec.key]}
        ctx.note(result)
    arch = reference_archs(ctx)[0]
    t0 = time.perf_counter()
    with whole_network_backend(be).prepare(arch) as exe:
        m, _ = measure_quietly(exe, settings, monitor)
    network_s = time.perf_counter() - t0
    ctx.say(f"  {arch.name} end to end: {m.median_us:.1f} us, {network_s:.3f} s")
    return result | {"s_per_network": network_s}


def step_reference(ctx: Context) -> dict:
    """Keys of the reference networks and of the grids (factor study)."""
    be, settings, path = open_table(ctx)
    specs = unique(arch_specs(ctx.plan.reference, space(ctx)) + [s for g in ctx.plan.grids for s in grid_specs(g)])
    summary = build_table(specs, path, be, settings, progress=False, deadline=ctx.deadline)
    ctx.say(f"{path.name}: {summary.line()}")
    rows = load_table(path).rows
    cost = [rows[s.key].get("prepare_s", 0) + rows[s.key].get("wall_s", 0) for s in specs
            if rows.get(s.key, {}).get("status") == "ok" and "prepare_s" in rows[s.key]]
    return summary_dict(summary) | {"median_row_s": float(np.median(cost)) if cost else None}


def _validate_part(ctx: Context, part: str, archs, path: Path, store: bool, deadline: float) -> dict:
    try:
        report = validate(path, archs, store=store, progress=False, deadline=deadline,
                          network_s=ctx.costs.get("s_per_network"))
    except LatbenchError as err:
        ctx.say(f"{part}: {err}")
        write_part(ctx.work, part, {"error": str(err)})
        return {"networks": 0, "error": str(err)}
    write_part(ctx.work, part, report)
    cal = report.get("calibrated_held_out") or report.get("stored_calibration") or {}
    ctx.say(f"{part}: {report['networks']} networks, raw sum within 3 % "
            f"{report['raw_sum']['within_3_pct']:.0f} % (bias {report['raw_sum']['bias_pct']:+.1f} %)"
            + (f"; calibrated within 3 % {cal['within_3_pct']:.0f} %, max {cal['max_abs_pct_error']:.1f} %"
               if cal else ""))
    return {"networks": report["networks"], "blocks_added": report["blocks_added"],
            "s_per_key": report["s_per_key"], "cut": report["cut_by_deadline"]}


def step_validate(ctx: Context) -> dict:
    """Held-out Sobol networks (keys network by network, then end to end), the calibration fitted
    and stored; then the reference networks end to end against it."""
    _, _, path = open_table(ctx)
    refs = reference_archs(ctx)
    keep = len(refs) * 2 * ctx.costs.get("s_per_network", 1.0) + 5.0
    archs = sample_archs(space(ctx), ctx.plan.validate_max, ctx.plan.validate_seed)
    out = {"sobol": _validate_part(ctx, "sobol", archs, path, True, ctx.deadline - keep)}
    out["reference"] = _validate_part(ctx, "reference", refs, path, False, ctx.deadline)
    return out


def step_protocol(ctx: Context) -> dict:
    """The reference networks' keys timed with the other cache protocols too, network by network
    (smallest first), against the same end-to-end measurements: each protocol's e2e/sum, with
    the network's weight bytes beside the cache's (evidence for the default protocol). The
    other protocols' medians go into the report (validation.json, part "protocol"), not into a
    table: a table has one protocol."""
    be, settings, path = open_table(ctx)
    plan, main = ctx.plan, be.config.protocol
    e2e = {r["network_id"]: r["median_us"] for r in read_networks(networks_log(path)) if r["status"] == "ok"}
    archs = [a for a in reference_archs(ctx) if network_id(a) in e2e]
    if not archs:
        return {"skipped": "no reference network was measured end to end (the validate step does that)"}
    archs.sort(key=lambda a: e2e[network_id(a)])
    table = load_table(path)
    rows, cache = table.ok(), table.cache_bytes
    others = [p for p in PROTOCOLS if p != main]
    medians: dict[str, dict] = {main: {}} | {p: {} for p in others}
    report = {"main_protocol": main, "cache_bytes": cache, "networks": [], "median_us": medians,
              "units": {"time": "microseconds", "size": "bytes"}}
    backends_by = {p: backends.create("torch", replace(be.config, protocol=p)) for p in others}
    last_s = ctx.costs.get("s_per_key", 1.0)
    for arch in archs:
        specs = unique(arch.blocks)
        for p in others:
            for spec in specs:
                if spec.key in medians[p]:
                    continue
                if ctx.left() < 2 * last_s + 2:
                    break
                t0 = time.perf_counter()
                medians[p][spec.key] = measure_row(backends_by[p], spec, settings).get("median_us")
                last_s = time.perf_counter() - t0
        sums = {main: _sum(arch, rows)} | {p: _sum(arch, medians[p]) for p in others}
        medians[main] |= {s.key: rows.get(s.key) for s in specs}
        measured = e2e[network_id(arch)]
        report["networks"].append({
            "name": arch.name, "e2e_us": measured, "sum_us": sums,
            "e2e_over_sum": {p: (measured / v if v else None) for p, v in sums.items()},
            "weight_bytes": target_bytes(arch, plan.precision, 1)[0]})
        write_part(ctx.work, "protocol", report)
        ctx.say(f"protocol: {arch.name} e2e {measured:.1f} us; e2e/sum "
                + ", ".join(f"{p} {r:.3f}" if r else f"{p} -" for p, r in report["networks"][-1]["e2e_over_sum"].items()))
        if ctx.left() < 2 * last_s + 2:
            break
    return {"networks": len(report["networks"]),
            "e2e_over_sum": {n["name"]: n["e2e_over_sum"] for n in report["networks"]}}


def _sum(arch, medians: dict) -> float | None:
    """Sum of a network's block medians (us), None unless every block has one."""
    values = [medians.get(b.key) for b in arch.blocks]
    return float(sum(values)) if all(values) else None


def step_fresh(ctx: Context) -> dict:
    """Networks of another seed against the calibration stored by an earlier session, not refit:
    the error a user gets."""
    _, _, path = open_table(ctx)
    archs = sample_archs(space(ctx), ctx.plan.fresh_n, ctx.plan.fresh_seed)
    return _validate_part(ctx, "fresh", archs, path, False, ctx.deadline)


def step_more_keys(ctx: Context) -> dict:
    """Keys of more Sobol networks, while time is left."""
    be, settings, path = open_table(ctx)
    specs = sample_specs(space(ctx), ctx.plan.more_networks, ctx.plan.more_seed)
    summary = build_table(specs, path, be, settings, progress=False, deadline=ctx.deadline)
    ctx.say(f"{path.name}: {summary.line()}")
    return summary_dict(summary)


def cudnn_check(ctx: Context, autotune: bool) -> dict:
    """Latency and seconds per key of a few keys and one network with cuDNN's heuristics or its
    autotuning (nothing is written to the table). One setting per process: torch caches cuDNN
    plans by convolution, whatever the benchmark flag, so a second setting in the same process
    would reuse the first one's plans."""
    plan = ctx.plan
    if plan.device != "cuda" or not plan.cudnn_keys:
        return {"skipped": "cuDNN applies to CUDA tables only"}
    settings = HarnessSettings.for_device("cuda", quick=plan.quick)
    specs = arch_specs(plan.reference[1:2], space(ctx))[:plan.cudnn_keys]
    be = backends.create("torch", BackendConfig.for_device("cuda", plan.precision, plan.protocol,
                                                           options={"cudnn_benchmark": autotune}))
    rows, seconds = {}, []
    out = {"cudnn_benchmark": autotune, "median_us": rows, "s_per_key": None}
    for spec in specs:
        if ctx.left() < 5 + 2 * max(seconds, default=0.0):
            break
        t0 = time.perf_counter()
        rows[spec.key] = measure_row(be, spec, settings).get("median_us")
        seconds.append(time.perf_counter() - t0)
        out["s_per_key"] = float(np.mean(seconds))
        ctx.note(out)
    arch = reference_archs(ctx)[1]
    # Autotuning tries every algorithm of every convolution of the network once: a few times
    # the heuristic network's cost (the smoke step's, on another network) and never fewer than 10 s.
    if ctx.left() > max(10.0, 3 * ctx.costs.get("s_per_network", 0.0)):
        with whole_network_backend(be).prepare(arch) as exe:
            out |= {"network": arch.name, "network_us": measure_quietly(exe, settings)[0].median_us}
    ctx.say(f"cudnn benchmark={autotune}: {len(rows)} keys, {out['s_per_key']} s/key, "
            f"{arch.name} {out.get('network_us')} us")
    return out


def step_cudnn_heuristics(ctx: Context) -> dict:
    return cudnn_check(ctx, autotune=False)


def step_cudnn_autotuned(ctx: Context) -> dict:
    return cudnn_check(ctx, autotune=True)


def _run_tool(ctx: Context, argv: list[str], ok_codes=(0,)) -> dict:
    """Run a command of the repository with the time left (SIGTERM at the deadline, so that it
    can write what it has, SIGKILL 10 s later); its output goes to the session log. The step
    fails when the command does."""
    proc = subprocess.Popen(argv, cwd=ctx.repo)
    try:
        rc = proc.wait(timeout=max(1.0, ctx.left()))
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        return {"status": "stopped at its deadline", "rc": rc}
    return {"status": "ok" if rc in ok_codes else f"failed (exit {rc})", "rc": rc}


def step_gpu_tests(ctx: Context) -> dict:
    """pytest -m gpu on this machine (on a CPU every test skips, saying why)."""
    folder = ctx.repo / "tests" / "gpu"
    if not folder.is_dir():
        return {"skipped": "no tests/ in this installation"}
    # The timm checks run where timm imports (a lent GPU machine has it). Exit code 5 (nothing
    # collected) is what a machine without a GPU or timm gets: every test skips.
    return _run_tool(ctx, [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu or timm", "-p", "no:cacheprovider",
                           str(folder), str(ctx.repo / "tests" / "test_timm.py")],
                     ok_codes=(0, 5) if ctx.plan.device == "cpu" else (0,))


def step_harness(ctx: Context) -> dict:
    """bench/harness_bench.py: latbench's harness beside its peers; a row per block as it ends."""
    script = ctx.repo / "bench" / "harness_bench.py"
    if not script.is_file():
        return {"skipped": "no bench/ in this installation"}
    argv = [sys.executable, str(script), "--device", ctx.plan.device, "--jsonl",
            str(ctx.work / "harness_bench.jsonl"), "--budget-s", f"{max(1.0, ctx.left() - 5):.0f}",
            *ctx.plan.harness_args]
    return _run_tool(ctx, argv)


STEPS = {"smoke": step_smoke, "reference": step_reference, "validate": step_validate, "protocol": step_protocol,
         "gpu-tests": step_gpu_tests, "harness": step_harness, "cudnn-heuristics": step_cudnn_heuristics,
         "cudnn-autotuned": step_cudnn_autotuned, "fresh": step_fresh, "more-keys": step_more_keys}


def run_step(name: str, work: Path, seconds: float) -> int:
    """Entry point of a step's process, which has `seconds` from its start; writes
    work/steps/NAME.json (with "status" once the step has ended); returns the exit code."""
    raw = json.loads((work / "context.json").read_text())
    ctx = Context(Plan.from_dict(raw["plan"]), work, Path(raw["repo"]), Path(raw["tables"]),
                  time.monotonic() + seconds, raw.get("costs", {}), name)
    t0 = time.perf_counter()
    try:
        result = {"status": "ok"} | STEPS[name](ctx)
        code = 0 if result["status"] == "ok" else 1
    except (LatbenchError, TableError) as err:
        ctx.say(f"{name}: {err}")
        result, code = {"status": "failed", "reason": str(err)}, 1
    except Exception as err:  # noqa: BLE001 - a step's crash is reported; the session goes on
        import traceback

        traceback.print_exc()
        result, code = {"status": "failed", "reason": f"{type(err).__name__}: {err}"[:300]}, 1
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_result(work, name, result)
    return code


__all__ = ["STEPS", "run_step"]
