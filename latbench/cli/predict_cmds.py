"""`latbench predict` and `latbench validate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table as RichTable
from rich.text import Text

from latbench.cli import app
from latbench.cli.options import (MAX_NETWORKS, ArchsOpt, GpuOpt, JsonOpt, MaybeTableOpt, Missing, MissingOpt,
                                  Precision, PrecisionOpt, SeedOpt, SpaceOpt, TableOpt, emit_json, number_value,
                                  path_value)
from latbench.console import console
from latbench.errors import LatbenchError, MissingKeysError


def resolve_table(table: Optional[Path], gpu: Optional[str] = None, precision: Optional[Precision] = None) -> Path:
    """--table, or the one table in tables/ that fits --gpu/--precision."""
    from latbench import env, resources

    if table is not None:
        return table
    shipped = sorted((resources.config_dir().parent / "tables").glob("*.jsonl"))
    shipped = [p for p in shipped if not p.name.endswith(".networks.jsonl")]
    if gpu:
        shipped = [p for p in shipped if env.gpu_matches(gpu, p.stem)]
    if precision:
        shipped = [p for p in shipped if f"-{precision.value}-" in p.stem]
    if len(shipped) != 1:
        names = ", ".join(p.name for p in shipped) or "none"
        raise LatbenchError(f"give --table PATH (tables/ offers: {names})")
    return shipped[0]


def check_target(table, gpu: Optional[str], precision: Optional[Precision]) -> None:
    """A table of another GPU or precision than asked predicts something else: refuse."""
    from latbench import env

    if gpu and not env.gpu_matches(gpu, table.device_name):
        raise LatbenchError(f"--gpu {gpu} but {table.path} was measured on {table.device_name}; "
                            "give that GPU's table or drop --gpu")
    if precision and precision.value != table.precision:
        raise LatbenchError(f"--precision {precision.value} but {table.path} holds {table.precision} latencies; "
                            "give a table of that precision or drop --precision")


@app.command("predict")
def predict(
    arch: Annotated[str, typer.Argument(help="Arch file, bundled name (gpunet-1) or encoded vector.")],
    table: MaybeTableOpt = None,
    json_out: JsonOpt = False,
    breakdown: Annotated[bool, typer.Option(help="Per-stage and per-block latencies.")] = False,
    missing: MissingOpt = Missing.error,
    gpu: GpuOpt = None,
    precision: PrecisionOpt = None,
    space: SpaceOpt = "gpunet",
):
    """Whole-network latency from a table: calibrated value, raw sum, coverage, breakdown."""
    from latbench import load_arch
    from latbench.predictor import Predictor
    from latbench.space import load_space
    from latbench.table import load_table

    path = resolve_table(table, gpu, precision)
    net = load_arch(arch, load_space(space))
    t = load_table(path)
    check_target(t, gpu, precision)
    if missing == Missing.measure:
        from latbench.harness import HarnessSettings
        from latbench.provenance import backend_for_table
        from latbench.validate import fill_missing

        fill_missing([net], path, backend_for_table(t), HarnessSettings.from_dict(t.meta["harness"]))
        t = load_table(path)
    pred = Predictor(t)
    try:
        p = pred.predict(net, missing="estimate" if missing == Missing.estimate else "error")
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
        emit_json(obj)
        return
    print_prediction(net, arch, p, pred, t, path, breakdown)


def print_prediction(net, arch: str, p, pred, t, path: Path, breakdown: bool) -> None:
    out = console()
    kind = "calibrated" if p.calibrated else "raw sum (table has no calibration: run latbench validate)"
    out.print(Text.assemble((net.name, "bold"), f": {p.latency_ms:.3f} ms {kind}; raw sum {p.raw_sum_ms:.3f} ms; "
                            f"coverage {p.coverage * 100:.0f} % of {len(set(net.keys))} keys "
                            f"({p.measured_fraction * 100:.0f} % of the sum measured)"))
    out.print(f"table: {path} ({t.describe()})")
    if p.missing:
        out.print(f"{len(p.missing)} keys estimated: {pred.estimator.summary()}")
    if p.extrapolated:
        lo, hi = (v / 1000 for v in t.calibration["fitted_range_us"])
        out.print(f"note: the calibration was fitted on networks of {lo:.3g}-{hi:.3g} ms (raw sum); this one "
                  f"lies outside, so the value given is {p.calibration_used} (latbench validate --archs {arch} "
                  "adds it to the fit)")
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


#: Networks validate measures at most: each is decoded, built and timed end to end (seconds each).
MAX_VALIDATE = 1 << 16


@app.command("validate")
def validate_cmd(
    table: TableOpt,
    n: Annotated[int, typer.Option("--n", min=0, max=MAX_VALIDATE,
                                   help="Sobol networks of --space to measure end to end (0: only --archs).")] = 50,
    archs: ArchsOpt = [],  # noqa: B006 - typer's idiom for a repeatable option
    seed: SeedOpt = 1,
    space: SpaceOpt = "gpunet",
    report: Annotated[Optional[Path], typer.Option(help="Report JSON (default: TABLE.validation.json).",
                                                   parser=path_value)] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Predicted-vs-measured chart (PNG; an SVG beside it).",
                                                 parser=path_value)] = None,
    store: Annotated[bool, typer.Option(help="Store the fitted calibration with the table.")] = True,
    time_limit: Annotated[Optional[float], typer.Option(
        "--time-limit", parser=number_value(1, 30 * 86400), metavar="S", help="Seconds: validate as many networks as fit (keys network by "
                                                    "network, then end to end).")] = None,
    json_out: JsonOpt = False,
):
    """Measure networks end to end, compare with the table, fit and store the calibration."""
    from latbench import load_arch
    from latbench.files import check_distinct, check_output, write_json
    from latbench.space import load_space, sample_archs
    from latbench.table import table_files
    from latbench.validate import validate

    if n == 0 and not archs:
        raise LatbenchError("--n 0: give a positive number of networks, or --archs")
    report = check_output(report or Path(str(table).removesuffix(".jsonl") + ".validation.json"), "report file")
    for written in table_files(table):  # the table and its networks log grow: both writable now
        check_output(written, "table file", append=True)
    outputs = {"--table's files": table_files(table), "--report": report}
    if plot:
        from latbench.plots.common import chart_paths  # matplotlib: only when a chart is asked for

        check_output(plot, "chart file")
        outputs["--plot"] = chart_paths(plot)
    check_distinct(outputs)
    sp = load_space(space)
    nets = (sample_archs(sp, n, seed) if n else []) + [load_arch(a, sp) for a in archs]
    deadline = time.monotonic() + time_limit if time_limit else None
    rep = validate(table, nets, store=store, deadline=deadline, progress=not json_out)
    write_json(report, rep)
    paths = []
    if plot:
        from latbench.plots import plot_validate

        paths = plot_validate(rep, plot)
    stored = store and rep["calibration"] is not None
    if json_out:
        emit_json(rep | {"report": str(report), "charts": [str(p) for p in paths]})
        return
    print_report(rep)
    console().print(f"report: {report}" + ("; calibration stored with the table" if stored else ""))
    if paths:
        console().print("chart: " + ", ".join(map(str, paths)))


def print_report(rep: dict) -> None:
    from latbench.validate import MIN_FIT_NETWORKS

    out = console()
    out.print(f"{rep['networks']} networks on {rep['table_provenance']}")
    columns = [("raw sum", rep["raw_sum"])]
    if rep.get("stored_calibration"):
        columns.append((f"stored calibration ({rep['stored_calibration']['model']})", rep["stored_calibration"]))
    if rep.get("calibrated_held_out"):
        columns.append((f"refit, held out ({rep['calibration']['model']})", rep["calibrated_held_out"]))
    else:
        out.print(f"(fewer than {MIN_FIT_NETWORKS} networks: compared, no calibration fitted)")
    t = RichTable(title="whole network vs prediction")
    t.add_column("metric")
    for label, _ in columns:
        t.add_column(label, justify="right")
    rows = [("within +-3 %", "within_3_pct", "%"), ("within +-5 %", "within_5_pct", "%"),
            ("within +-10 %", "within_10_pct", "%"), ("mean abs error", "mean_abs_pct_error", "%"),
            ("max abs error", "max_abs_pct_error", "%"), ("bias", "bias_pct", "%"),
            ("Kendall tau", "kendall_tau", ""), ("Spearman", "spearman", "")]
    for label, key, unit in rows:
        # a rank correlation is null when undefined (one network, or all equal)
        t.add_row(label, *["n/a" if m[key] is None else f"{m[key]:.1f} %" if unit else f"{m[key]:.3f}"
                           for _, m in columns])
    out.print(t)
    if rep.get("networks_skipped"):
        out.print(f"{len(rep['networks_skipped'])} networks skipped: {rep['networks_skipped'][0]['reason']}")
    if rep.get("noise"):
        nz = rep["noise"]
        out.print(f"run-to-run noise of whole networks ({nz['networks']} re-measured): "
                  f"median {nz['median_abs_pct_diff']:.2f} %, max {nz['max_abs_pct_diff']:.2f} %")
