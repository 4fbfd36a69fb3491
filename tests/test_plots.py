"""Charts (latbench.plots and `latbench plot`), drawn from small real inputs and read back.

A CPU table is measured here (a 16-channel 8x8 IRB with the factors of factor_grid at small
levels, plus one block of each other kind), a Sobol pool of the tiny space is predicted from it,
and a search log and a validation report are assembled from those numbers. Every chart is checked
for its files and for the data it plots, not only for existing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from latbench import plots
from latbench.calibration import error_report
from latbench.cli import main, plot_cmds  # noqa: F401  (plot_cmds registers `latbench plot`)
from latbench.errors import LatbenchError
from latbench.keysets import factor_levels
from latbench.spec import BlockSpec, parse_key
from latbench.table import load_table

BASE = {"kind": "irb", "in_channels": 16, "out_channels": 16, "height": 8, "width": 8, "kernel": 3,
        "stride": 1, "expansion": 3, "se": False, "act": "relu"}
VARY = {"act": ["relu", "swish", "hswish", "sigmoid", "tanh", "prelu", "gelu"], "expansion": [1, 2, 3, 4, 6],
        "kernel": [3, 5, 7], "se": [False, True], "resolution": [4, 8, 16], "filters": [8, 16, 24]}
OTHER_KINDS = ["head-i3-o8-h32-w32-k3-s2-swish", "conv-i8-o8-h16-w16-k3-s1-relu",
               "fused_irb-i8-o16-h16-w16-k3-s2-e2-relu-se0", "tail-i24-o64-h4-w4-k1-s1-relu-c10"]
CONV_BASE = "conv-i8-o8-h16-w16-k3-s1-relu"


def cli(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exit_:
        return exit_.code
    return 0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Paths of a measured CPU table A, a second table B (2 threads, a subset of A's keys), a
    grid file, a pool of 64 tiny networks and a search folder of 12 trials."""
    from nas.pool import make_pool
    from nas.results import ResultsLog
    from latbench.space import load_space

    d = tmp_path_factory.mktemp("plots")
    grid = d / "grid.json"
    grid.write_text(json.dumps({"name": "plot-test", "base": BASE, "vary": VARY, "keys": OTHER_KINDS}))
    subset = d / "subset.json"
    subset.write_text(json.dumps({"keys": OTHER_KINDS + [BlockSpec(**BASE).key]}))
    for path, g, threads in ((d / "a.jsonl", grid, "1"), (d / "b.jsonl", subset, "2")):
        assert cli("build-table", "--device", "cpu", "--grid", str(g), "--out", str(path), "--quick",
                   "--threads", threads) == 0
    pool = make_pool(d / "a.jsonl", load_space("tiny"), 64, 0, [0.1, 0.2])
    pool.save(d / "pool.npz")
    lo, hi = (float(q) for q in np.quantile(pool.latency_ms, [0.3, 0.7]))
    log = ResultsLog(d / "search")
    log.open({"table": str(d / "a.jsonl"), "space": "tiny", "latency_min": lo, "latency_max": hi,
              "method": "random"}, resume=False)
    for trial in range(12):
        start = log.start(trial, trial, pool.X[trial], pool.latency_ms[trial])
        log.finish(start, {"top1": accuracy(pool.latency_ms[trial], pool.X[trial]), "params": 1000})
    start = log.start(12, 12, pool.X[12], pool.latency_ms[12])
    log.finish(start, {"status": "failed", "reason": "out of memory"})
    return {"dir": d, "a": d / "a.jsonl", "b": d / "b.jsonl", "grid": grid, "pool": d / "pool.npz",
            "search": d / "search", "group": (lo, hi)}


def accuracy(latency_ms: float, x) -> float:
    """A deterministic stand-in for proxy accuracy (%): rises with latency, with a spread from x."""
    return float(60 + 20 * np.tanh(latency_ms) + int(np.sum(x)) % 7)


def check_files(paths, stem: str) -> None:
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert {p.stem for p in paths} == {stem}
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()


def check_title(fig, table) -> None:
    text = fig.get_suptitle()
    for part in (table.device_name, table.backend, table.precision, f"batch {table.batch}"):
        assert part in text


def panels(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}


def bar_data(ax):
    """(heights, [(low, high)] of the error bars) of the panel's bar chart."""
    from matplotlib.container import BarContainer

    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    heights = [p.get_height() for p in bars.patches]
    segments = bars.errorbar.lines[2][0].get_segments()
    return heights, [(s[0][1], s[1][1]) for s in segments]


# -- factors ---------------------------------------------------------------------------------------
def test_factor_chart_plots_the_table_rows_of_each_level(inputs, tmp_path):
    table = load_table(inputs["a"])
    chart = plots.factors(inputs["a"], tmp_path, grid=inputs["grid"])
    check_files(chart.paths, "factors")
    check_title(chart.figure, table)
    assert chart.missing == []
    base, levels = factor_levels(inputs["grid"])
    by_title = panels(chart.figure)
    titles = {"act": "activation", "expansion": "expansion", "kernel": "kernel", "se": "squeeze-excitation",
              "resolution": "input resolution", "filters": "filters"}
    for factor, specs in levels.items():
        heights, errors = bar_data(by_title[titles[factor]])
        rows = [table.rows[s.key] for s in specs]
        assert heights == pytest.approx([r["median_us"] for r in rows])
        np.testing.assert_allclose(errors, [(r["p10_us"], r["p90_us"]) for r in rows])
    base_row = table.rows[base.key]
    heights, errors = bar_data(by_title["layers per stage"])
    assert heights == pytest.approx([n * base_row["median_us"] for n in range(1, 9)])
    np.testing.assert_allclose(errors[-1], (8 * base_row["p10_us"], 8 * base_row["p90_us"]))
    summary = by_title["relative cost of each factor"]
    ratios = [p.get_x() + p.get_width() for p in summary.patches]
    expected = [max(m) / min(m) for m in
                ([table.rows[s.key]["median_us"] for s in levels[f]] for f in titles)] + [8.0]
    assert ratios == pytest.approx(expected)


def test_factor_chart_lists_and_leaves_out_missing_rows(inputs, tmp_path, capsys):
    table = load_table(inputs["a"])
    chart = plots.factors(inputs["a"], tmp_path, grid=inputs["grid"], base_key=CONV_BASE)
    check_files(chart.paths, f"factors-{CONV_BASE}")
    expected_missing = [f"conv-i8-o8-h16-w16-k3-s1-{a}" for a in VARY["act"][1:]]
    assert set(expected_missing) <= set(chart.missing)
    assert not set(chart.missing) & set(table.ok())
    err = capsys.readouterr().err
    assert all(key in err for key in chart.missing)
    assert "factor(s) expansion, se left out" in err  # neither applies to a conv block
    by_title = panels(chart.figure)
    assert "squeeze-excitation" not in by_title
    heights, _ = bar_data(by_title["activation"])
    assert heights == pytest.approx([table.rows[CONV_BASE]["median_us"]])  # only relu is measured


def test_factor_chart_measures_missing_rows_on_the_tables_device(inputs, tmp_path, run_cli):
    path = tmp_path / "copy.jsonl"
    shutil.copy(inputs["a"], path)
    code, _, err = run_cli("plot", "factors", "--table", str(path), "--out", str(tmp_path), "--grid",
                           str(inputs["grid"]), "--base", CONV_BASE, "--missing", "measure")
    assert code == 0, err
    chart = plots.factors(path, tmp_path, grid=inputs["grid"], base_key=CONV_BASE)  # charts never measure
    assert chart.missing == []
    table = load_table(path)
    heights, _ = bar_data(panels(chart.figure)["activation"])
    assert heights == pytest.approx([table.rows[f"conv-i8-o8-h16-w16-k3-s1-{a}"]["median_us"]
                                     for a in VARY["act"]])


def test_factor_chart_refuses_to_measure_for_another_device(inputs, tmp_path, run_cli):
    lines = inputs["a"].read_text().splitlines()
    meta = json.loads(lines[0])
    meta["device"]["name"] = "another CPU"
    path = tmp_path / "other.jsonl"
    path.write_text("\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    code, _, err = run_cli("plot", "factors", "--table", str(path), "--out", str(tmp_path), "--grid",
                           str(inputs["grid"]), "--base", CONV_BASE, "--missing", "measure")
    assert code == 2 and "cannot measure the missing blocks on this machine" in err


def test_factor_chart_refuses_a_table_without_any_of_its_blocks(inputs, tmp_path):
    with pytest.raises(LatbenchError, match="has none of the"):
        plots.factors(inputs["a"], tmp_path)  # the bundled factor grid: 112 channels at 28x28


# -- groups ----------------------------------------------------------------------------------------
def test_group_chart_counts_every_network_once(inputs, tmp_path):
    from nas.pool import load_pool

    pool = load_pool(inputs["pool"])
    edges = [round(float(q), 4) for q in np.quantile(pool.latency_ms, [0.25, 0.75])]
    chart = plots.groups(pool.latency_ms, tmp_path / "groups.png", edges, pool.meta)
    check_files(chart.paths, "groups")
    assert pool.meta["table_provenance"] in chart.figure.get_suptitle()
    ax = chart.figure.axes[0]
    heights = [p.get_height() for p in ax.containers[0].patches]
    assert sum(heights) == len(pool) == 64
    assert sorted(line.get_xdata()[0] for line in ax.lines) == edges
    labels = [t.get_text() for t in chart.figure.legends[0].get_texts()]
    assert [int(t.split(": ")[1].split()[0]) for t in labels] == [c for _, _, c in pool.group_counts(edges)]
    with pytest.raises(LatbenchError, match="not finite"):
        plots.groups(np.array([0.1, float("nan")]), tmp_path / "nan.png", edges)


# -- pareto ----------------------------------------------------------------------------------------
def test_pareto_chart_front_is_exactly_the_non_dominated_trials(inputs, tmp_path):
    from latbench import load_arch
    from latbench.predictor import Predictor
    from nas.results import ResultsLog

    from latbench.predictor import predict_references

    history = ResultsLog(inputs["search"]).read()
    done = history.done
    lat = [r["predicted_ms"] for r in done]
    acc = [r["top1"] for r in done]
    table = load_table(inputs["a"])
    refs = {n: (p.latency_ms, p.measured_fraction) for n, p in predict_references(table).items()}
    group = (history.config["latency_min"], history.config["latency_max"])
    chart = plots.pareto(done, tmp_path / "pareto.png", table.describe(), group_ms=group, references=refs)
    check_files(chart.paths, "pareto")
    check_title(chart.figure, table)
    ax = chart.figure.axes[0]
    trials = next(c for c in ax.collections if c.get_label().startswith("trials"))
    assert sorted(map(tuple, trials.get_offsets().tolist())) == sorted(zip(lat, acc))
    front = [(x, y) for x, y in zip(lat, acc)
             if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for x2, y2 in zip(lat, acc))]
    step = next(line for line in ax.lines if line.get_label().startswith("Pareto front"))
    assert list(zip(step.get_xdata(), step.get_ydata())) == sorted(front)
    refs = {line.get_label().split(":")[0]: line.get_xdata()[0] for line in ax.lines
            if line.get_label().startswith("GPUNet")}
    pred = Predictor(table)
    assert refs == pytest.approx({f"GPUNet-{i}": pred.predict(load_arch(f"gpunet-{i}"), missing="estimate").latency_ms
                                  for i in range(3)})
    span = next(p for p in ax.patches if p.get_label().startswith("searched latency group"))
    assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx(inputs["group"])


def test_pareto_chart_needs_finished_trials(tmp_path, run_cli):
    with pytest.raises(LatbenchError, match="no finished trial"):
        plots.pareto([], tmp_path / "p.png", "provenance")
    code, _, err = run_cli("plot", "pareto", "--results", str(tmp_path), "--out", str(tmp_path / "p.png"))
    assert code == 2 and "no results.jsonl" in err


# -- validate --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(inputs) -> dict:
    """A validation report of real numbers: the table's rows as 'networks', p90 as the raw sum and
    p10 as the calibrated prediction (a plotting test needs real values, not a real validation)."""
    table = load_table(inputs["a"])
    rows = [r for r in table.rows.values() if r["status"] == "ok"]
    measured, raw, cal = (np.array([r[f] for r in rows]) for f in ("median_us", "p90_us", "p10_us"))
    return {"table_provenance": table.describe(), "device": table.meta["device"],
            "backend": table.meta["backend"], "precision": table.precision, "batch": table.batch,
            "raw_sum": error_report(measured, raw), "calibrated_held_out": error_report(measured, cal),
            "calibration": {"model": "linear"},
            "rows": [{"name": r["key"], "measured_us": r["median_us"], "raw_sum_us": r["p90_us"],
                      "calibrated_held_out_us": r["p10_us"], "n_blocks": 1} for r in rows]}


def test_validate_chart_plots_the_reports_rows_and_headlines(inputs, report, tmp_path):
    chart = plots.validate(report, tmp_path / "validate.png")
    check_files(chart.paths, "validate")
    check_title(chart.figure, load_table(inputs["a"]))
    ax = chart.figure.axes[0]
    series = {c.get_label().split(":")[0]: c for c in ax.collections if ":" in c.get_label()}
    assert set(series) == {"raw sum", "calibrated (linear), held out"}
    measured = [r["measured_us"] / 1000 for r in report["rows"]]
    for name, field, block in (("raw sum", "raw_sum_us", "raw_sum"),
                               ("calibrated (linear), held out", "calibrated_held_out_us", "calibrated_held_out")):
        offsets = series[name].get_offsets()
        np.testing.assert_allclose(offsets[:, 0], measured)
        np.testing.assert_allclose(offsets[:, 1], [r[field] / 1000 for r in report["rows"]])
        m = report[block]
        label = series[name].get_label()
        assert f"{m['within_3_pct']:.0f} % within ±3 %" in label
        assert f"{m['within_10_pct']:.0f} % within ±10 %" in label
        assert f"Kendall τ {m['kendall_tau']:.2f}" in label
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert plots.plot_validate(path, tmp_path / "again.png") == [tmp_path / "again.png", tmp_path / "again.svg"]


def test_validate_chart_refuses_what_is_not_a_report(tmp_path):
    with pytest.raises(LatbenchError, match="not a latbench validation report"):
        plots.validate({"rows": []}, tmp_path / "v.png")


# -- compare ---------------------------------------------------------------------------------------
def test_compare_chart_plots_each_shared_keys_ratio_by_kind(inputs, tmp_path):
    a, b = load_table(inputs["a"]), load_table(inputs["b"])
    chart = plots.compare(a, b, tmp_path / "compare.png")
    check_files(chart.paths, "compare")
    title = chart.figure.get_suptitle()
    assert "A: " + a.describe() in title and "B: " + b.describe() in title
    assert "device.threads: 1 != 2" in title  # what describe() leaves out, the chart names
    shared = set(a.ok()) & set(b.ok())
    assert len(shared) == 5
    ax = chart.figure.axes[0]
    plotted = {c.get_label(): sorted(c.get_offsets()[:, 1]) for c in ax.collections
               if not c.get_label().startswith("_")}  # the strips; the geo-mean bars are unlabelled
    expected = {}
    for key in shared:
        expected.setdefault(parse_key(key).kind, []).append(b.ok()[key] / a.ok()[key])
    assert plotted.keys() == expected.keys()
    for kind, ratios in expected.items():
        assert plotted[kind] == pytest.approx(sorted(ratios))
    assert ax.get_yscale() == "log"
    gmeans = [t.get_text() for t in ax.texts]
    assert gmeans == [f"geo-mean ×{np.exp(np.mean(np.log(expected[k]))):.2f}" for k in plotted]


def test_compare_chart_refuses_tables_without_a_shared_key(inputs, tmp_path):
    lines = inputs["b"].read_text().splitlines()
    empty = tmp_path / "empty.jsonl"
    empty.write_text(lines[0] + "\n")
    with pytest.raises(LatbenchError, match="share no measured block key"):
        plots.compare(inputs["a"], empty, tmp_path / "c.png")


# -- command line ----------------------------------------------------------------------------------
def test_plot_commands_write_and_print_their_files(inputs, report, tmp_path, capsys):
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps(report))
    runs = {
        "factors": ["--table", str(inputs["a"]), "--grid", str(inputs["grid"]), "--out", str(tmp_path)],
        "groups": ["--pool", str(inputs["pool"]), "--groups", "0.5,1", "--out", str(tmp_path / "groups.png")],
        "pareto": ["--results", str(inputs["search"]), "--table", str(inputs["a"]), "--out", str(tmp_path / "pareto")],
        "validate": ["--report", str(rep), "--out", str(tmp_path / "validate.png")],
        "compare": ["--tables", str(inputs["a"]), str(inputs["b"]), "--out", str(tmp_path / "compare.png")],
    }
    for command, args in runs.items():
        assert cli("plot", command, *args) == 0, command
        out = capsys.readouterr().out.split()
        written = [tmp_path / f"{command}.png", tmp_path / f"{command}.svg"]
        assert out == [w for p in written for w in ("wrote", str(p))]
        assert all(p.is_file() for p in written)


def test_plot_commands_report_user_errors_in_one_line(inputs, tmp_path, capsys):
    assert cli("plot", "compare", "--tables", str(inputs["a"])) == 2
    assert cli("plot", "validate", "--report", str(inputs["a"])) == 2  # a table, not a report
    assert cli("plot", "groups", "--pool", str(tmp_path / "none.npz")) == 2
    assert cli("plot", "factors", "--table", str(inputs["a"]), "--base", "irb-bogus") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("latbench: error: ") for line in err)
