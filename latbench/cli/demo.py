"""The demo (`latbench demo`): latbench's main job end to end on the machine at hand, sized for a laptop CPU.

1. build a latency table on this machine (torch; CPU unless a GPU is visible) for the factor grid,
   the reference GPUNet-0/1/2 and the blocks of 64 Sobol networks of the tiny space;
2. validate it on held-out tiny networks measured end to end, fit and store the calibration;
3. predict GPUNet-0/1/2 with this table and with every table shipped in tables/ (GPU tables
   measured on lent GPUs, with their provenance);
4. draw a Sobol pool of the tiny space, count latency groups, and run a short LA-MCTS search in
   the middle group, scored by short training on the bundled digits set;
5. write the charts: factors, groups, Pareto front, validation, and torch vs ONNX Runtime.
Everything lands in OUT (default demo_out/); the run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text

from latbench import backends, plots, resources
from latbench.backends.base import BackendConfig
from latbench.build import build_table
from latbench.console import console
from latbench.files import write_json
from latbench.harness import HarnessSettings
from latbench.keysets import arch_specs, grid_specs, sample_specs, unique
from latbench.predictor import REFERENCE_NETWORKS, predict_references
from latbench.space import load_space, sample_archs
from latbench.table import load_table
from latbench.validate import validate
from nas.evaluate import TrainConfig
from nas.pool import load_pool, make_pool
from nas.results import ResultsLog
from nas.search import SearchConfig, run_search


def say(text: str) -> None:
    console(stderr=True).print(Text.assemble(("demo", "bold cyan"), f" {text}"))


def run(out: str | Path = "demo_out", quick: bool = False, search_budget: int = 8) -> dict:
    """Run the demo; returns a summary (also written to OUT/summary.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tiny = load_space("tiny")
    device = "cuda" if backends.cuda_available() else "cpu"
    be = backends.create("torch", BackendConfig.for_device(device))
    settings = HarnessSettings.for_device(device, quick=quick)
    table_path = out / f"{device}-torch-{be.config.precision}-b1.jsonl"

    say(f"1/5 latency table on this machine (torch on {device}) -> {table_path}")
    specs = unique(grid_specs("factor_grid") + arch_specs(REFERENCE_NETWORKS) + sample_specs(tiny, 64, seed=0))
    build_table(specs, table_path, be, settings)

    say("2/5 validation on 24 held-out tiny networks (Sobol seed 1), measured end to end")
    report = validate(table_path, sample_archs(tiny, 24, seed=1))
    write_json(out / "validation.json", report)
    cal = report["calibrated_held_out"]
    say(f"   raw sum within +-10 %: {report['raw_sum']['within_10_pct']:.0f} %; calibrated "
        f"({report['calibration']['model']}, held out): {cal['within_10_pct']:.0f} % within +-10 %, "
        f"mean error {cal['mean_abs_pct_error']:.1f} %, Kendall tau "
        + ("n/a" if cal["kendall_tau"] is None else f"{cal['kendall_tau']:.2f}"))

    say("3/5 GPUNet-0/1/2 predicted with this table and with the tables shipped in tables/")
    predictions = reference_rows([table_path] + shipped_tables())
    for row in predictions:
        say(f"   {row['network']}: {row['latency_ms']:.3f} ms ({row['kind']}; raw sum {row['raw_sum_ms']:.3f} ms, "
            f"{row['measured_fraction'] * 100:.0f} % measured) with {row['table']} ({row['provenance']})")

    say("4/5 Sobol pool of the tiny space, latency groups, short LA-MCTS search on digits")
    search = short_search(table_path, tiny, out, search_budget)

    say("5/5 charts")
    charts = draw_charts(table_path, out, be.config, settings, report)
    summary = {"table": str(table_path), "validation": report["calibrated_held_out"],
               "raw_sum": report["raw_sum"], "predictions": predictions, "search": search,
               "charts": [str(c) for c in charts]}
    write_json(out / "summary.json", summary)
    say(f"done: {out}/summary.json")
    return summary


def shipped_tables() -> list[Path]:
    folder = resources.config_dir().parent / "tables"
    return sorted(p for p in folder.glob("*.jsonl") if not p.name.endswith(".networks.jsonl"))


def reference_rows(tables: list[Path]) -> list[dict]:
    """GPUNet-0/1/2 predicted with each table, one row per (table, network)."""
    rows = []
    for path in tables:
        table = load_table(path)
        for name, p in predict_references(table).items():
            rows.append({"network": name, "table": str(path), "provenance": table.describe(),
                         "latency_ms": p.latency_ms, "raw_sum_ms": p.raw_sum_ms, "coverage": p.coverage,
                         "measured_fraction": p.measured_fraction, "kind": p.calibration_used})
    return rows


def short_search(table_path: Path, space, out: Path, budget: int) -> dict:
    pool = make_pool(table_path, space, 4096, seed=0)
    lo, hi = (float(q) for q in np.quantile(pool.latency_ms, [0.4, 0.6]))
    edges = [round(lo, 3), round(hi, 3)]
    pool.meta["groups"] = edges
    pool.save(out / "pool.npz")
    for a, b, count in pool.group_counts(edges):
        say(f"   group [{a:g}, {b:g}) ms: {count} networks")
    cfg = SearchConfig(table=str(table_path), latency_min=edges[0], latency_max=edges[1], space="tiny",
                       budget=budget, method="lamcts", pool=str(out / "pool.npz"), n_init=4,
                       train=TrainConfig(data="digits", epochs=1, seed=0).as_dict())
    folder = out / "search"
    summary = run_search(cfg, folder, resume=(folder / "results.jsonl").is_file())
    best = summary["top"][0] if summary["top"] else None
    if best:
        say(f"   best of {summary['trials']} trials: {best['top1']:.1f} % top-1 (digits proxy), "
            f"{best['predicted_ms']:.3f} ms predicted; {summary['best']['json']}")
    return summary


def draw_charts(table_path: Path, out: Path, config, settings, report: dict) -> list[Path]:
    charts = out / "charts"
    table = load_table(table_path)
    paths = []
    paths += plots.factors(table, charts).paths
    pool = load_pool(out / "pool.npz")
    paths += plots.groups(pool.latency_ms, charts / "groups.png", pool.meta["groups"], pool.meta).paths
    history = ResultsLog(out / "search").read()
    refs = {name: (p.latency_ms, p.measured_fraction) for name, p in predict_references(table).items()}
    group = (history.config["latency_min"], history.config["latency_max"])
    paths += plots.pareto(history.done, charts / "pareto.png", table.describe(), group_ms=group,
                          method=history.config["method"], references=refs).paths
    paths += plots.plot_validate(report, charts / "validate.png")
    if config.device == "cpu":
        ort_path = out / f"{config.device}-onnxruntime-{config.precision}-b1.jsonl"
        build_table(grid_specs("factor_grid"), ort_path, backends.create("onnxruntime", config), settings)
        paths += plots.compare(table_path, ort_path, charts / "torch_vs_onnxruntime.png").paths
    return paths
