"""`latbench sample` (stage one: Sobol pool and latency groups) and `latbench search`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table as RichTable

from latbench.cli import app
from latbench.cli.output import console
from latbench.errors import LatbenchError


def parse_groups(text: str) -> list[float]:
    try:
        edges = sorted(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise LatbenchError(f"--groups {text!r}: comma-separated milliseconds, e.g. 0.5,1.0,2.0") from None
    if not edges or edges[0] <= 0:
        raise LatbenchError(f"--groups {text!r}: give positive boundaries in ms")
    return edges


@app.command("sample")
def sample_cmd(
    table: Path = typer.Option(..., help="Latency table."),
    n: int = typer.Option(65536, help="Networks to draw (a power of two keeps Sobol balanced)."),
    groups: str = typer.Option("0.5,1.0,2.0", help="Latency-group boundaries in ms."),
    space: str = typer.Option("gpunet", help="Search space."),
    seed: int = typer.Option(0, help="Sobol seed."),
    out: Optional[Path] = typer.Option(None, help="Write the pool (.npz) for latbench search --pool."),
):
    """Draw a Sobol pool, predict every network, count the latency groups."""
    from nas.pool import make_pool
    from nas.space import load_space

    edges = parse_groups(groups)
    if n & (n - 1):
        console(stderr=True).print(f"note: --n {n} is not a power of two; Sobol balance holds for 2^m points")
    pool = make_pool(table, load_space(space), n, seed, edges)
    out_c = console()
    out_c.print(f"{n} {space} networks (Sobol seed {seed}) predicted with {pool.meta['table_provenance']}"
                f" ({'calibrated' if pool.meta['calibrated'] else 'raw sums'}); "
                f"{pool.measured_fraction.mean() * 100:.0f} % of the latency rests on measured rows on average")
    t = RichTable(title="latency groups (ms per batch)")
    for c in ("group", "networks", "share"):
        t.add_column(c, justify="right")
    for lo, hi, count in pool.group_counts(edges):
        t.add_row(f"[{lo:g}, {hi:g})", str(count), f"{count / n * 100:.1f} %")
    out_c.print(t)
    out_c.print(f"predicted latency: min {pool.latency_ms.min():.3f}, median {float(pool.latency_ms[pool.latency_ms.argsort()[n // 2]]):.3f}, "
                f"max {pool.latency_ms.max():.3f} ms")
    if out:
        pool.save(out)
        out_c.print(f"pool: {out}")


@app.command("search")
def search_cmd(
    table: Path = typer.Option(..., help="Latency table for the latency groups."),
    latency_max: float = typer.Option(..., help="Upper end of the latency group, ms (exclusive)."),
    latency_min: float = typer.Option(0.0, help="Lower end of the latency group, ms."),
    budget: int = typer.Option(64, help="Trials to train."),
    parallel: Optional[int] = typer.Option(None, help="Trials at once (default: one per GPU, else 1)."),
    method: str = typer.Option("lamcts", help="lamcts | bo | random."),
    data: str = typer.Option("digits", help="digits | imagefolder:PATH | cifar10:PATH."),
    epochs: int = typer.Option(2, help="Training epochs per trial."),
    proxy_resolution: Optional[int] = typer.Option(None, help="Training resolution (default per dataset)."),
    width_mult: float = typer.Option(1.0, help="Channel multiplier for training."),
    train_fraction: float = typer.Option(1.0, help="Share of the training split used."),
    optimizer: str = typer.Option("sgd", help="sgd | adamw."),
    seed: int = typer.Option(0, help="Seed of the pool, the proposals and training."),
    space: str = typer.Option("gpunet", help="Search space."),
    pool: Optional[Path] = typer.Option(None, help="A pool from latbench sample (default: drawn here)."),
    pool_size: int = typer.Option(1 << 16, help="Pool size when drawn here (power of two)."),
    out: Path = typer.Option(Path("search_out"), help="Output folder (results.jsonl, best.json, best.onnx)."),
    resume: bool = typer.Option(False, help="Continue the search in --out."),
    ray: Optional[str] = typer.Option(None, help="Run trials on Ray: auto or an address."),
    measure: bool = typer.Option(True, help="On the table's device, measure trained networks' missing blocks."),
    top_k: int = typer.Option(5, help="Trials listed at the end."),
    leaf_size: int = typer.Option(10, help="LA-MCTS: trials a tree node holds before it splits."),
    n_init: int = typer.Option(8, help="Random trials before the model-based proposals."),
):
    """LA-MCTS-guided BO (or bo, random) inside one latency group, scored by short training."""
    from latbench.env import usable_cpus
    from nas.search import SearchConfig, default_parallel, run_search
    from nas.evaluate import TrainConfig

    if budget < 1:
        raise LatbenchError(f"--budget {budget}: at least one trial")
    parallel = parallel or default_parallel()
    # On a CPU the workers share the cores: one thread each keeps them from starving each other.
    threads = None if default_parallel() > 1 or ray else max(1, usable_cpus() // parallel)
    train = TrainConfig(data=data, epochs=epochs, proxy_resolution=proxy_resolution, width_mult=width_mult,
                        train_fraction=train_fraction, optimizer=optimizer, seed=seed, threads=threads)
    cfg = SearchConfig(table=str(table), latency_max=latency_max, latency_min=latency_min, space=space,
                       budget=budget, parallel=parallel, method=method, seed=seed,
                       pool=str(pool) if pool else None, pool_size=pool_size, train=train.as_dict(),
                       measure=measure, top_k=top_k, leaf_size=leaf_size, n_init=n_init)
    executor = None
    if ray:
        cfg.check()
        from nas.executors import RayExecutor

        executor = RayExecutor(ray, parallel)
    summary = run_search(cfg, out, resume=resume, executor=executor)
    print_summary(summary)


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
