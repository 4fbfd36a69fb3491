"""`latbench sample` (stage one: Sobol pool and latency groups) and `latbench search`."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table as RichTable

from latbench.cli import EXIT_SOME_FAILED, app
from latbench.cli.options import (JsonOpt, MAX_NETWORKS, SearchMissing, SeedOpt, SpaceOpt, TableOpt, emit_json,
                                  number_value, path_value, text_value)
from latbench.console import console
from latbench.errors import LatbenchError
from latbench.limits import MAX_MS
from nas.propose import METHODS

#: Latency groups are searched inside (0, MAX_GROUP_MS) ms: a day per forward pass is no group.
MAX_GROUP_MS = MAX_MS
#: Smallest group boundary, ms (a microsecond: no network runs faster, and a chart's axis must
#: be able to show it), and the most boundaries --groups takes.
MIN_GROUP_MS = 1e-3
MAX_GROUPS = 64


#: The proposal methods, as the samplers register them (nas.propose.SAMPLERS).
Method = Enum("Method", {m: m for m in METHODS}, type=str)


class Optimizer(str, Enum):
    sgd = "sgd"
    adamw = "adamw"


def parse_groups(text: str) -> list[float]:
    """Latency-group boundaries in ms: at most MAX_GROUPS, each in [MIN_GROUP_MS, MAX_GROUP_MS),
    distinct, returned sorted."""
    if text.count(",") >= MAX_GROUPS:
        raise LatbenchError(f"--groups: {text.count(',') + 1} boundaries; give at most {MAX_GROUPS}, e.g. 0.5,1.0,2.0")
    try:
        edges = sorted(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise LatbenchError(f"--groups {text!r}: comma-separated milliseconds, e.g. 0.5,1.0,2.0") from None
    if not edges or not all(math.isfinite(e) and MIN_GROUP_MS <= e < MAX_GROUP_MS for e in edges):
        raise LatbenchError(f"--groups {text!r}: give boundaries in ms from {MIN_GROUP_MS:g} to {MAX_GROUP_MS:g}, "
                            "e.g. 0.5,1.0,2.0")
    if len(set(edges)) != len(edges):
        raise LatbenchError(f"--groups {text!r}: a boundary is given twice")
    return edges


NOpt = Annotated[int, typer.Option("--n", min=1, max=MAX_NETWORKS,
                                   help="Sobol networks to draw (a power of two keeps Sobol balanced).")]


@app.command("sample")
def sample_cmd(
    table: TableOpt,
    n: NOpt = 65536,
    groups: Annotated[str, typer.Option(help="Latency-group boundaries in ms.")] = "0.5,1.0,2.0",
    space: SpaceOpt = "gpunet",
    seed: SeedOpt = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write the pool (.npz) for latbench search --pool.",
                                                parser=path_value)] = None,
    json_out: JsonOpt = False,
):
    """Draw a Sobol pool, predict every network, count the latency groups."""
    from latbench.files import check_distinct, check_output
    from latbench.space import load_space
    from latbench.table import table_files
    from nas.pool import make_pool

    edges = parse_groups(groups)
    if out:
        check_output(out, "pool file")
        check_distinct({"--table's files": table_files(table), "--out": out})
    sp = load_space(space)
    pool = make_pool(table, sp, n, seed, edges)
    if out:
        pool.save(out)
    counts = pool.group_counts(edges)
    lat = pool.latency_ms
    if json_out:
        emit_json({"space": sp.name, "n": n, "seed": seed, "table": str(table), "provenance": pool.meta["table_provenance"],
                   "calibrated": pool.meta["calibrated"], "units": "milliseconds per forward pass of one batch",
                   "measured_fraction_mean": float(pool.measured_fraction.mean()),
                   "groups": [{"lo_ms": lo, "hi_ms": hi, "networks": c} for lo, hi, c in counts],
                   "latency_ms": {"min": float(lat.min()), "median": float(sorted(lat)[n // 2]), "max": float(lat.max())},
                   "pool": str(out) if out else None})
        return
    out_c = console()
    if n & (n - 1):
        console(stderr=True).print(f"note: --n {n} is not a power of two; Sobol balance holds for 2^m points")
    out_c.print(f"{n} {sp.name} networks (Sobol seed {seed}) predicted with {pool.meta['table_provenance']}"
                f" ({'calibrated' if pool.meta['calibrated'] else 'raw sums'}); "
                f"{pool.measured_fraction.mean() * 100:.0f} % of the latency rests on measured rows on average")
    t = RichTable(title="latency groups (ms per batch)")
    for c in ("group", "networks", "share"):
        t.add_column(c, justify="right")
    for lo, hi, count in counts:
        t.add_row(f"[{lo:g}, {hi:g})", str(count), f"{count / n * 100:.1f} %")
    out_c.print(t)
    out_c.print(f"predicted latency: min {lat.min():.3f}, median {float(sorted(lat)[n // 2]):.3f}, "
                f"max {lat.max():.3f} ms")
    if out:
        out_c.print(f"pool: {out}")


@app.command("search")
def search_cmd(
    table: TableOpt,
    latency_max: Annotated[float, typer.Option(parser=number_value(0, MAX_GROUP_MS), metavar="MS",
                                               help="Upper end of the latency group, ms (exclusive).")],
    latency_min: Annotated[float, typer.Option(parser=number_value(0, MAX_GROUP_MS), metavar="MS",
                                               help="Lower end of the latency group, ms.")] = 0.0,
    budget: Annotated[int, typer.Option(min=1, max=100_000, help="Trials to train.")] = 64,
    parallel: Annotated[Optional[int], typer.Option(min=1, max=1024, help="Trials at once (default: one per GPU, else 1).")] = None,
    method: Annotated[Method, typer.Option(help="Proposal method.")] = Method(METHODS[0]),
    data: Annotated[str, typer.Option(help="digits | imagefolder:PATH | cifar10:PATH.")] = "digits",
    epochs: Annotated[int, typer.Option(min=1, max=10_000, help="Training epochs per trial.")] = 2,
    proxy_resolution: Annotated[Optional[int], typer.Option(min=8, max=8192, help="Training resolution (default per dataset).")] = None,
    width_mult: Annotated[float, typer.Option(parser=number_value(0.01, 16), metavar="X",
                                              help="Channel multiplier for training (0.01-16).")] = 1.0,
    train_fraction: Annotated[float, typer.Option(parser=number_value(0, 1), metavar="SHARE",
                                                  help="Share of the training split used (0-1).")] = 1.0,
    optimizer: Annotated[Optimizer, typer.Option(help="Training optimiser.")] = Optimizer.sgd,
    seed: SeedOpt = 0,
    space: SpaceOpt = "gpunet",
    pool: Annotated[Optional[Path], typer.Option(help="A pool from latbench sample (default: drawn here).",
                                                 parser=path_value)] = None,
    n: Annotated[int, typer.Option("--n", min=1, max=MAX_NETWORKS,
                                   help="Sobol networks in the pool drawn here (a power of two).")] = 1 << 16,
    out: Annotated[Path, typer.Option(help="Output folder (results.jsonl, best.json, best.onnx).",
                                      parser=path_value)] = Path("search_out"),
    resume: Annotated[bool, typer.Option(help="Continue the search in --out.")] = False,
    ray: Annotated[Optional[str], typer.Option(help="Run trials on Ray: auto or an address.", parser=text_value)] = None,
    missing: Annotated[SearchMissing, typer.Option(
        help="Blocks a trained network lacks: measure (on the table's device) or estimate.")] = SearchMissing.measure,
    top_k: Annotated[int, typer.Option(min=1, max=10_000, help="Trials listed at the end.")] = 5,
    leaf_size: Annotated[int, typer.Option(min=2, max=100_000, help="LA-MCTS: trials a tree node holds before it splits.")] = 10,
    n_init: Annotated[int, typer.Option(min=1, max=100_000, help="Random trials before the model-based proposals.")] = 8,
    json_out: JsonOpt = False,
    pool_size: Annotated[Optional[int], typer.Option("--pool-size", min=1, max=MAX_NETWORKS, hidden=True)] = None,
    measure: Annotated[Optional[bool], typer.Option("--measure/--no-measure", hidden=True)] = None,
):
    """LA-MCTS-guided BO (or bo, random) inside one latency group, scored by short training.

    Exit code 3 when some trials failed (the results stay valid; --resume continues).
    """
    from latbench.env import usable_cpus
    from nas.evaluate import TrainConfig
    from nas.search import SearchConfig, default_parallel, run_search

    n = pool_size or n  # --pool-size: the spelling of earlier releases
    if measure is not None:  # --measure/--no-measure: likewise
        missing = SearchMissing.measure if measure else SearchMissing.estimate
    parallel = parallel or default_parallel()
    # On a CPU the workers share the cores: one thread each keeps them from starving each other.
    threads = None if default_parallel() > 1 or ray else max(1, usable_cpus() // parallel)
    train = TrainConfig(data=data, epochs=epochs, proxy_resolution=proxy_resolution, width_mult=width_mult,
                        train_fraction=train_fraction, optimizer=optimizer.value, seed=seed, threads=threads)
    cfg = SearchConfig(table=str(table), latency_max=latency_max, latency_min=latency_min, space=space,
                       budget=budget, parallel=parallel, method=method.value, seed=seed,
                       pool=str(pool) if pool else None, pool_size=n, train=train.as_dict(),
                       measure=missing == SearchMissing.measure, top_k=top_k, leaf_size=leaf_size, n_init=n_init)
    executor = None
    if ray:
        cfg.check()
        from nas.executors import RayExecutor

        executor = RayExecutor(ray, parallel)
    summary = run_search(cfg, out, resume=resume, executor=executor, progress=not json_out)
    if json_out:
        emit_json(summary)
    else:
        print_summary(summary)
    if summary["failed"]:
        raise typer.Exit(EXIT_SOME_FAILED)


def print_summary(summary: dict) -> None:
    out = console()
    out.print(f"{summary['trials']} trials ({summary['failed']} failed), method {summary['method']}, "
              f"group {summary['group_ms'][0]:g}-{summary['group_ms'][1]:g} ms")
    t = RichTable(title=f"top {len(summary['top'])} (accuracy from the proxy; latency at real resolution)")
    for c in ("trial", "top-1 %", "predicted ms", "measured rows", "proxy params", "encoding"):
        t.add_column(c)
    for r in summary["top"]:
        frac = r.get("measured_fraction")
        t.add_row(str(r["trial"]), f"{r['top1']:.2f}", f"{r['predicted_ms']:.3f}",
                  "-" if frac is None else f"{frac * 100:.0f} %", f"{(r.get('params') or 0) / 1e6:.2f} M",
                  ",".join(map(str, r["x"])))
    out.print(t)
    if "best" in summary:
        out.print(f"best network: {summary['best']['json']}, {summary['best']['onnx']}")
