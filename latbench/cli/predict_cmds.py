"""`latbench predict` and `latbench validate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table as RichTable

from latbench.cli import app
from latbench.cli.output import console
from latbench.errors import LatbenchError, MissingKeysError


def resolve_table(table: Optional[Path], gpu: Optional[str] = None, precision: Optional[str] = None) -> Path:
    """--table, or the one table in tables/ that fits --gpu/--precision."""
    from latbench import env, resources

    if table is not None:
        return table
    shipped = sorted((resources.config_dir().parent / "tables").glob("*.jsonl"))
    shipped = [p for p in shipped if not p.name.endswith(".networks.jsonl")]
    if gpu:
        shipped = [p for p in shipped if env.gpu_matches(gpu, p.stem)]
    if precision:
        shipped = [p for p in shipped if f"-{precision}-" in p.stem]
    if len(shipped) != 1:
        names = ", ".join(p.name for p in shipped) or "none"
        raise LatbenchError(f"give --table PATH (tables/ offers: {names})")
    return shipped[0]


def warn_mismatch(table, gpu: Optional[str], precision: Optional[str]) -> None:
    from latbench import env

    err = console(stderr=True)
    if gpu and not env.gpu_matches(gpu, table.device_name):
        err.print(f"warning: --gpu {gpu} but the table was measured on {table.device_name}")
    if precision and precision != table.precision:
        err.print(f"warning: --precision {precision} but the table holds {table.precision} latencies")


@app.command("predict")
def predict(
    arch: str = typer.Argument(..., help="Arch file, bundled name (gpunet-1) or encoded vector."),
    table: Optional[Path] = typer.Option(None, help="Latency table (default: the one in tables/)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    breakdown: bool = typer.Option(False, help="Per-stage and per-block latencies."),
    missing: str = typer.Option("error", help="Keys the table lacks: error | estimate | measure."),
    gpu: Optional[str] = typer.Option(None, help="Expected GPU; a table of another warns."),
    precision: Optional[str] = typer.Option(None, help="Expected precision; a table of another warns."),
    space: str = typer.Option("gpunet", help="Space of an encoded vector."),
):
    """Whole-network latency from a table: calibrated value, raw sum, coverage, breakdown."""
    from latbench import load_arch
    from latbench.predictor import Predictor
    from latbench.table import load_table
    from nas.space import load_space

    if missing not in ("error", "estimate", "measure"):
        raise LatbenchError(f"--missing {missing}: use error, estimate or measure")
    path = resolve_table(table, gpu, precision)
    net = load_arch(arch, load_space(space))
    t = load_table(path)
    warn_mismatch(t, gpu, precision)
    if missing == "measure":
        from latbench.validate import backend_for_table, fill_missing
        from latbench.harness import HarnessSettings

        fill_missing([net], path, backend_for_table(t), HarnessSettings(**t.meta["harness"]))
        t = load_table(path)
    pred = Predictor(t)
    try:
        p = pred.predict(net, missing="estimate" if missing == "estimate" else "error")
    except MissingKeysError as err:
        raise LatbenchError(
            f"{path}: lacks {len(err.keys)} of the {len(set(net.keys))} keys of {net.name} "
            f"(e.g. {err.keys[0]}); fill them with: latbench build-table --archs {arch} --out {path} "
            "(on the table's device), or use --missing estimate") from None
    if json_out:
        obj = {"network": net.name, "table": str(path), "provenance": t.describe(),
               "units": "milliseconds per forward pass of one batch", **p.as_dict()}
        if p.missing:
            obj["estimate_error"] = pred.estimator.cv
        print(json.dumps(obj, indent=2))
        return
    out = console()
    kind = "calibrated" if p.calibrated else "raw sum (table has no calibration: run latbench validate)"
    out.print(f"[bold]{net.name}[/bold]: {p.latency_ms:.3f} ms {kind}; raw sum {p.raw_sum_ms:.3f} ms; "
              f"coverage {p.coverage * 100:.0f} % of {len(set(net.keys))} keys "
              f"({p.measured_fraction * 100:.0f} % of the sum measured)")
    out.print(f"table: {path} ({t.describe()})")
    if p.missing:
        out.print(f"{len(p.missing)} keys estimated: {pred.estimator.summary()}")
    if p.extrapolated:
        lo, hi = (v / 1000 for v in t.calibration["fitted_range_us"])
        out.print(f"note: the calibration was fitted on networks of {lo:.3g}-{hi:.3g} ms (raw sum); this one "
                  "lies outside, so trust the raw sum as much as the calibrated value (latbench validate "
                  f"--archs {arch} adds it to the fit)")
    if breakdown:
        st = RichTable(title="per stage (us)")
        for c in ("stage", "blocks", "us", "share"):
            st.add_column(c, justify="right")
        raw_us = p.raw_sum_ms * 1000
        for s in p.stages:
            st.add_row(str(s["stage"]), str(s["blocks"]), f"{s['us']:.1f}", f"{s['us'] / raw_us * 100:.1f} %")
        out.print(st)
        bt = RichTable(title="per block (us)")
        for c in ("#", "stage", "key", "us", "source"):
            bt.add_column(c)
        for b in p.blocks:
            bt.add_row(str(b["index"]), str(b["stage"]), b["key"], f"{b['us']:.2f}", b["source"])
        out.print(bt)


@app.command("validate")
def validate_cmd(
    table: Path = typer.Option(..., help="Latency table to validate (measured on this machine)."),
    n: int = typer.Option(50, help="Sobol-sampled networks to measure end to end (0: only --archs)."),
    archs: List[str] = typer.Option([], help="Networks to add to the sample (repeatable)."),
    seed: int = typer.Option(1, help="Sobol seed (pick one the table was not built from)."),
    space: str = typer.Option("gpunet", help="Space to sample from."),
    report: Optional[Path] = typer.Option(None, help="Report JSON (default: TABLE.validation.json)."),
    plot: Optional[Path] = typer.Option(None, help="Predicted-vs-measured chart (PNG; an SVG beside it)."),
    store: bool = typer.Option(True, help="Store the fitted calibration with the table."),
):
    """Measure networks end to end, compare with the table, fit and store the calibration."""
    from latbench import load_arch
    from latbench.validate import sample_archs, validate
    from nas.space import load_space

    if n < 0 or (n == 0 and not archs):
        raise LatbenchError(f"--n {n}: give a positive number of networks, or --archs")
    sp = load_space(space)
    nets = (sample_archs(sp, n, seed) if n else []) + [load_arch(a, sp) for a in archs]
    rep = validate(table, nets, store=store)
    report = report or Path(str(table).removesuffix(".jsonl") + ".validation.json")
    report.write_text(json.dumps(rep, indent=1))
    print_report(rep)
    stored = store and rep["calibration"] is not None
    console().print(f"report: {report}" + ("; calibration stored with the table" if stored else ""))
    if plot:
        from latbench.plots import plot_validate

        paths = plot_validate(rep, plot)
        console().print("chart: " + ", ".join(map(str, paths)))


def print_report(rep: dict) -> None:
    out = console()
    out.print(f"{rep['networks']} networks on {rep['table_provenance']}")
    columns = [("raw sum", rep["raw_sum"])]
    if rep.get("stored_calibration"):
        columns.append((f"stored calibration ({rep['stored_calibration']['model']})", rep["stored_calibration"]))
    if rep.get("calibrated_held_out"):
        columns.append((f"refit, held out ({rep['calibration']['model']})", rep["calibrated_held_out"]))
    else:
        out.print(f"(fewer than {6} networks: compared, no calibration fitted)")
    t = RichTable(title="whole network vs prediction")
    t.add_column("metric")
    for label, _ in columns:
        t.add_column(label, justify="right")
    rows = [("within +-3 %", "within_3_pct", "%"), ("within +-5 %", "within_5_pct", "%"),
            ("within +-10 %", "within_10_pct", "%"), ("mean abs error", "mean_abs_pct_error", "%"),
            ("max abs error", "max_abs_pct_error", "%"), ("bias", "bias_pct", "%"),
            ("Kendall tau", "kendall_tau", ""), ("Spearman", "spearman", "")]
    for label, key, unit in rows:
        t.add_row(label, *[f"{m[key]:.1f} %" if unit else f"{m[key]:.3f}" for _, m in columns])
    out.print(t)
    if rep.get("noise"):
        nz = rep["noise"]
        out.print(f"run-to-run noise of whole networks ({nz['networks']} re-measured): "
                  f"median {nz['median_abs_pct_diff']:.2f} %, max {nz['max_abs_pct_diff']:.2f} %")
