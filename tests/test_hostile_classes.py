"""Classes of hostile input found by a hostile pass after the property tests, one test each:
users' text printed as text (rich markup, matplotlib mathtext), calibrations that would scale a
network absurdly, outputs that name an input's companion file, and values too long to print."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from latbench.arch_io import arch_to_json
from latbench.space import load_space, sample

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tables" / "cpu-torch-fp32-b1.jsonl"
REPORT = REPO / "bench" / "results" / "cpu" / "validation_tiny.json"
TINY = load_space("tiny")
MARKUP = "[/]x[bold $\\frac{$"


def one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("latbench: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err


def tiny_arch_file(tmp_path: Path, name: str) -> Path:
    arch = TINY.decode(sample(TINY, 1, 0)[0])
    doc = arch_to_json(arch) | {"name": name}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(doc))
    return path


def table_copy(tmp_path: Path, edit_meta=None, edit_calibration=None) -> Path:
    """The shipped table with its metadata or its calibration edited."""
    lines = [json.loads(line) for line in TABLE.read_text().splitlines()]
    for rec in lines:
        if rec.get("type") == "meta" and edit_meta:
            edit_meta(rec)
        if rec.get("type") == "calibration" and edit_calibration:
            edit_calibration(rec)
    out = tmp_path / "t.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return out


def test_names_with_markup_are_printed_as_written(run_cli, tmp_path):
    arch = tiny_arch_file(tmp_path, MARKUP)
    code, out, err = run_cli("arch", "show", str(arch), "--space", "tiny")
    assert code == 0 and MARKUP in out, err
    code, out, err = run_cli("predict", str(arch), "--space", "tiny", "--table", str(TABLE), "--missing", "estimate")
    assert code == 0 and out.startswith(f"{MARKUP}: "), err
    table = table_copy(tmp_path, edit_meta=lambda m: m["backend"]["heap"].update(allocator=MARKUP))
    code, out, err = run_cli("table", "show", "--table", str(table))
    assert code == 0 and f"allocator {MARKUP}" in out, err


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c.update(ratio_range=[1e-300, 1e-300]), "ratio_range[0]"),
    (lambda c: c.update(ratio_range=[1.0, 50.0]), "ratio_range[1]"),
    (lambda c: c["cv"].update(median_abs_pct_error="[/]"), "cv.median_abs_pct_error"),
])
def test_a_calibration_outside_what_latbench_stores_is_refused(run_cli, tmp_path, edit, fragment):
    table = table_copy(tmp_path, edit_calibration=edit)
    for args in (["table", "show", "--table", str(table)], ["predict", "gpunet-1", "--table", str(table)]):
        one_line_error(*run_cli(*args)[::2], fragment)


def test_a_calibration_that_scales_a_network_absurdly_is_never_applied(run_cli, tmp_path):
    def huge(c):
        c.update(coef=[1e12] * len(c["coef"]), fitted_range_us=[1.0, 8e10])

    table = table_copy(tmp_path, edit_calibration=huge)
    for args in (["predict", "gpunet-2", "--table", str(table)],
                 ["sample", "--table", str(table), "--space", "tiny", "--n", "8", "--json"]):
        one_line_error(*run_cli(*args)[::2], "damaged")


def test_outputs_never_name_an_input_or_its_companion_file(run_cli, tmp_path):
    table = tmp_path / "t.jsonl"
    shutil.copy(TABLE, table)
    log = tmp_path / "t.networks.jsonl"
    log.write_text('{"network_id": "n1", "status": "failed", "reason": "x"}\n')
    before = log.read_bytes(), table.read_bytes()
    one_line_error(*run_cli("sample", "--table", str(table), "--space", "tiny", "--n", "8", "--out", str(log))[::2],
                   "both name")
    one_line_error(*run_cli("table", "export", "--table", str(table), "--csv", str(log))[::2], "both name")
    arch = tiny_arch_file(tmp_path, "a")
    arch_bytes = arch.read_bytes()
    one_line_error(*run_cli("export", str(arch), "--space", "tiny", "--onnx", str(arch))[::2], "both name")
    report = tmp_path / "rep.svg"
    shutil.copy(REPORT, report)
    one_line_error(*run_cli("plot", "validate", "--report", str(report), "--out", str(tmp_path / "rep.png"))[::2],
                   "both name")
    search = tmp_path / "s"
    search.mkdir()
    shutil.copy(TABLE, search / "results.jsonl")
    one_line_error(*run_cli("search", "--table", str(search / "results.jsonl"), "--space", "tiny",
                            "--out", str(search), "--budget", "1", "--latency-max", "5")[::2], "both name")
    assert (log.read_bytes(), table.read_bytes()) == before and arch.read_bytes() == arch_bytes
    assert REPORT.read_bytes() == report.read_bytes()


def test_mathtext_in_a_report_is_drawn_as_text(run_cli, tmp_path):
    rep = json.loads(REPORT.read_text()) | {"table_provenance": "$\\frac{$ costs $5"}
    path = tmp_path / "rep.json"
    path.write_text(json.dumps(rep))
    code, out, err = run_cli("plot", "validate", "--report", str(path), "--out", str(tmp_path / "v.png"))
    assert code == 0 and (tmp_path / "v.svg").is_file(), err
    assert "$\\frac{$ costs $5" in (tmp_path / "v.svg").read_text()


def test_very_long_values_are_elided_in_the_one_line_error(run_cli):
    code, _, err = run_cli("arch", "show", "timm:" + "a" * 10_000)
    one_line_error(code, err, "characters ...]")
    assert len(err) < 700


@pytest.mark.parametrize("groups, fragment", [("1e-320", "from 0.001"), (",".join(["1"] * 100), "at most 64")])
def test_group_boundaries_a_chart_can_show(run_cli, groups, fragment):
    code, _, err = run_cli("sample", "--table", str(TABLE), "--space", "tiny", "--n", "8", "--groups", groups)
    one_line_error(code, err, fragment)


def test_export_json_is_the_only_thing_on_stdout(run_cli, tmp_path):
    """onnx-graphsurgeon logs to stdout ("[W] ... bfloat16"): that must not break --json."""
    arch = tiny_arch_file(tmp_path, "a")
    code, out, err = run_cli("export", str(arch), "--space", "tiny", "--onnx", str(tmp_path / "a.onnx"),
                             "--precision", "bf16", "--json")
    assert code == 0, err
    assert json.loads(out)["precision"] == "bf16"


def test_session_folders_are_checked_before_anything_runs(run_cli, tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    one_line_error(*run_cli("session", "run", "--rehearse", "--work", str(a_file), "--out", str(tmp_path / "o"))[::2],
                   "work folder")
    one_line_error(*run_cli("session", "run", "--rehearse", "--work", str(tmp_path / "o"),
                            "--out", str(tmp_path / "o"))[::2], "give two folders")
    one_line_error(*run_cli("session", "run", "--rehearse", "--tables", str(a_file), "--out", str(tmp_path / "o"))[::2],
                   "not a folder")


def networks_log_copy(tmp_path: Path, edit) -> Path:
    """The shipped table and a networks log of the tiny space's first Sobol networks (seed 1),
    one of them edited; the blocks are all in the table, so validate measures nothing before
    reading the log."""
    table = tmp_path / "t.jsonl"
    shutil.copy(TABLE, table)
    shipped = [json.loads(line) for line in TABLE.with_name(TABLE.name.replace(".jsonl", ".networks.jsonl"))
               .read_text().splitlines()]
    first = next(r for r in shipped if r.get("status") == "ok" and r["name"].startswith("tiny-sobol1-"))
    edit(first)
    (tmp_path / "t.networks.jsonl").write_text(json.dumps(first) + "\n")
    return table


@pytest.mark.parametrize("edit, fragment", [
    (lambda r: r.update(p10_us=r["median_us"] * 2, p90_us=r["median_us"] * 3), "p10_us <= median_us <= p90_us"),
    (lambda r: r.update(median_us=1e-300, p10_us=1e-300, p90_us=1e-300), "median_us: 1e-300 is outside"),
    (lambda r: r.update(median_us=8e10, p10_us=8e10, p90_us=8e10), "the sum of its blocks"),
])
def test_a_networks_log_no_network_could_give_is_refused(run_cli, tmp_path, edit, fragment):
    table = networks_log_copy(tmp_path, edit)
    code, _, err = run_cli("validate", "--table", str(table), "--space", "tiny", "--seed", "1", "--n", "1")
    one_line_error(code, err.splitlines()[-1] + "\n", fragment)  # after the progress bar's line


def test_rank_correlations_are_null_when_undefined():
    from latbench.calibration import error_report

    rep = error_report([1000.0, 1000.0, 1000.0], [900.0, 1000.0, 1100.0])
    assert rep["kendall_tau"] is None and rep["spearman"] is None and rep["max_abs_pct_error"] == pytest.approx(10.0)
    assert json.dumps(rep, allow_nan=False)


def test_outputs_get_the_mode_a_plain_open_gives(run_cli, tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        code, _, err = run_cli("sample", "--table", str(TABLE), "--space", "tiny", "--n", "8",
                               "--out", str(tmp_path / "p.npz"))
    finally:
        os.umask(mask)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "p.npz").stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("args", [["predict", "gpunet-1", "--table", str(TABLE), "--gpu", ""],
                                  ["build-table", "--space", "tiny", "--n", "1", "--ray", ""],
                                  ["build-table", "--n", "1", "--sample-space", ""]])
def test_an_empty_name_is_refused_not_ignored(run_cli, args):
    one_line_error(*run_cli(*args)[::2], "empty value")


@pytest.mark.parametrize("args, fragment", [
    (["search", "--table", str(TABLE), "--latency-max", "nan"], "nan is not a finite number; give one from 0 to"),
    (["search", "--table", str(TABLE), "--latency-max", "1", "--latency-min", "-inf"], "-inf is not a finite"),
    (["search", "--table", str(TABLE), "--latency-max", "1", "--width-mult", "NaN"], "NaN is not a finite"),
    (["search", "--table", str(TABLE), "--latency-max", "1", "--train-fraction", "2"], "2 is out of range; give 0 to 1"),
    (["validate", "--table", str(TABLE), "--time-limit", "inf"], "inf is not a finite number"),
    (["session", "run", "--budget", "nan"], "nan is not a finite number; give one from 10 to 3600"),
    (["search", "--table", str(TABLE), "--latency-max", "fast"], "'fast' is not a number"),
])
def test_a_float_option_names_what_is_wrong_with_it(run_cli, args, fragment):
    """NaN passes every comparison: typer's own range check let it through to a message naming the
    wrong bound ("should be <= 86400000")."""
    one_line_error(*run_cli(*args)[::2], fragment)


@pytest.mark.parametrize("extra, fragment", [
    ({"type": "calibration", "coef": "x"}, "(calibration)"),
    ({"type": "bogus"}, "unknown record type 'bogus'"),
])
def test_build_table_never_appends_to_a_table_no_reader_takes(run_cli, tmp_path, extra, fragment):
    """build-table checks an existing table's every record as load_table does (it checked the
    metadata and rows only, and appended to tables that every reader then refused)."""
    table = table_copy(tmp_path)
    with table.open("a") as f:
        f.write(json.dumps(extra) + "\n")
    before = table.read_bytes()
    code, _, err = run_cli("build-table", "--space", "tiny", "--n", "1", "--out", str(table))
    one_line_error(code, err, fragment)
    assert table.read_bytes() == before


def test_a_measurement_no_reader_would_take_is_stored_as_a_failure(tmp_path):
    """A row below 1 ns (a subtraction gone wrong) would make every reader refuse the table."""
    from latbench.table import TableWriter, load_table

    records = [json.loads(line) for line in TABLE.read_text().splitlines()]
    meta = {k: v for k, v in records[0].items() if k not in ("type", "format", "created_at", "units")}
    row = next(r for r in records if r.get("type") == "row" and r["status"] == "ok")
    row = {k: v for k, v in row.items() if k != "type"} | {"median_us": 1e-9, "p10_us": 1e-9, "p90_us": 1e-9}
    TableWriter(tmp_path / "t.jsonl", meta).add(row)
    stored = load_table(tmp_path / "t.jsonl").rows[row["key"]]
    assert stored["status"] == "failed" and stored["reason"].startswith("implausible measurement: ")


# -- third hostile pass (1,459 earlier cases and 646 new ones over all 23 commands) -------------------
def test_an_out_of_memory_export_is_not_retried_with_another_exporter(monkeypatch):
    """The dynamo exporter needs onnxscript (not installed): an OOM in the TorchScript exporter
    was 'retried' there and ended in ModuleNotFoundError."""
    import torch

    from latbench import onnx_export

    def oom(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 13 GB")

    monkeypatch.setattr(torch.onnx, "export", oom)
    with pytest.raises(RuntimeError, match="allocate memory"):
        onnx_export._torch_export(torch.nn.Identity(), torch.zeros(1), 17)


def test_large_samples_are_drawn_in_chunks_of_the_same_sequence(monkeypatch):
    from latbench.space import sampling

    whole = sampling.sobol_indices(TINY.cardinalities, 70, seed=5)
    monkeypatch.setattr(sampling, "CHUNK_LOG2", 4)
    monkeypatch.setattr(sampling, "CHUNK", 16)
    assert (sampling.sobol_indices(TINY.cardinalities, 70, seed=5) == whole).all()


def test_more_cpu_threads_than_the_machine_has_are_refused(run_cli, tmp_path):
    """libgomp aborts the process when it cannot start the threads (no exception to catch)."""
    out = tmp_path / "t.jsonl"
    one_line_error(*run_cli("build-table", "--device", "cpu", "--grid", "smoke_grid", "--threads", "1024",
                            "--quick", "--out", str(out))[::2], "CPU threads asked")
    assert not out.exists()


@pytest.mark.parametrize("extra", [{}, "mixed"])
def test_a_parquet_that_cannot_be_written_leaves_no_csv(run_cli, tmp_path, extra):
    records = [json.loads(line) for line in TABLE.read_text().splitlines()[:41]]
    for i, rec in enumerate(records[1:]):
        rec["extra"] = extra if extra != "mixed" else [1, "x", {"a": 1}][i % 3]
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = run_cli("table", "export", "--table", str(table), "--csv", str(tmp_path / "x.csv"),
                           "--parquet", str(tmp_path / "x.parquet"))
    one_line_error(code, err, "cannot be written as Parquet")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.parquet").exists()


def test_a_name_the_terminal_cannot_encode_is_escaped(tmp_path):
    import os
    import subprocess
    import sys

    arch = tiny_arch_file(tmp_path, "\u202egpj.exe")
    env = dict(os.environ, PYTHONIOENCODING="ascii", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "latbench", "arch", "show", str(arch), "--space", "tiny"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "\\u202egpj.exe" in done.stdout, done.stderr


def _archive(tmp_path: Path, table_lines: list[str], name: str = "cpu-torch-fp32-b1.jsonl") -> Path:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "session.json").write_text(json.dumps({"table": name, "started_at": "2026-11-30T08:00:00+0000"}))
    (archive / name).write_text("".join(line + "\n" for line in table_lines))
    return archive


def _repo_with_table(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tables").mkdir(parents=True)
    shutil.copy(TABLE, repo / "tables" / TABLE.name)
    return repo


def test_ship_never_replaces_the_committed_table_with_less(tmp_path):
    from latbench.cli.ship import ship
    from latbench.errors import LatbenchError

    repo = _repo_with_table(tmp_path)
    before = (repo / "tables" / TABLE.name).read_bytes()
    archive = _archive(tmp_path, TABLE.read_text().splitlines()[:41])
    with pytest.raises(LatbenchError, match="is not the committed .* grown"):
        ship(archive, repo)
    assert (repo / "tables" / TABLE.name).read_bytes() == before


@pytest.mark.parametrize("edit", ["drop calibrations", "times x10"])
def test_ship_refuses_a_table_whose_committed_records_were_changed(tmp_path, edit):
    """Every row is still there, but calibrations were dropped or times changed: a session only
    appends to the committed table."""
    from latbench.cli.ship import ship
    from latbench.errors import LatbenchError

    repo = _repo_with_table(tmp_path)
    records = [json.loads(line) for line in TABLE.read_text().splitlines()]
    if edit == "drop calibrations":
        records = [r for r in records if r.get("type") != "calibration"]
    else:
        for r in records:
            if r.get("type") == "row" and r["status"] == "ok":
                r.update({k: r[k] * 10 for k in ("median_us", "p10_us", "p90_us") if r.get(k)})
    archive = _archive(tmp_path, [json.dumps(r) for r in records])
    with pytest.raises(LatbenchError, match="is not the committed .* grown"):
        ship(archive, repo)


def test_ship_checks_the_committed_reports_before_writing(tmp_path):
    from latbench.cli.ship import ship
    from latbench.errors import LatbenchError

    repo = _repo_with_table(tmp_path)
    results = repo / "bench" / "results" / "cpu"
    results.mkdir(parents=True)
    (results / "validation.json").write_text(json.dumps({"old": {"rows": "abc"}}))
    archive = _archive(tmp_path, TABLE.read_text().splitlines())
    (archive / "validation.json").write_text("{}")
    with pytest.raises(LatbenchError, match="old"):
        ship(archive, repo)
    assert sorted(p.name for p in results.iterdir()) == ["validation.json"]


def test_running_out_of_memory_is_one_line(run_cli, monkeypatch):
    from latbench.space import sampling

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 5.12 GiB for an array with shape (16777216, 41)")

    monkeypatch.setattr(sampling, "sobol_indices", too_big)
    one_line_error(*run_cli("sample", "--table", str(TABLE), "--space", "tiny", "--n", "16")[::2],
                   "out of memory (Unable to allocate 5.12 GiB")


def test_ship_refuses_a_table_whose_metadata_contradicts_its_name(tmp_path):
    from latbench.cli.ship import ship
    from latbench.errors import LatbenchError

    lines = TABLE.read_text().splitlines()
    meta = json.loads(lines[0]) | {"batch": 8}
    archive = _archive(tmp_path, [json.dumps(meta)] + lines[1:41])
    with pytest.raises(LatbenchError, match="its metadata names it cpu-torch-fp32-b8.jsonl"):
        ship(archive, _repo_with_table(tmp_path))


def test_ship_writes_nothing_into_the_archive_and_nothing_after_an_error(tmp_path):
    import gzip

    from latbench.cli.ship import ship
    from latbench.errors import LatbenchError

    archive = _archive(tmp_path, ["garbage"])
    (archive / "validation.json.gz").write_bytes(gzip.compress(b"{}"))
    before = sorted(p.name for p in archive.iterdir())
    with pytest.raises(LatbenchError):
        ship(archive, tmp_path / "repo")
    assert sorted(p.name for p in archive.iterdir()) == before and not (tmp_path / "repo").exists()


def test_merge_keeps_apart_an_input_and_its_networks_log(run_cli, tmp_path):
    a = table_copy(tmp_path)
    one_line_error(*run_cli("table", "merge", "--table", str(a), "--table", str(TABLE),
                            "--out", str(tmp_path / "t.networks.jsonl"))[::2], "both name")


def test_a_table_without_a_protocol_is_a_warm_table(run_cli, tmp_path):
    def drop(m):
        del m["protocol"]

    old = table_copy(tmp_path, edit_meta=drop)
    code, out, err = run_cli("table", "merge", "--table", str(old), "--table", str(TABLE),
                             "--out", str(tmp_path / "m.jsonl"), "--json")
    assert code == 0, err


def test_validate_checks_its_networks_log_before_measuring(run_cli, tmp_path):
    table = table_copy(tmp_path)
    (tmp_path / "t.networks.jsonl").mkdir()
    one_line_error(*run_cli("validate", "--table", str(table), "--space", "tiny", "--n", "2")[::2], "is a folder")


def test_a_second_metadata_record_is_refused(run_cli, tmp_path):
    table = table_copy(tmp_path)
    meta = json.loads(TABLE.read_text().splitlines()[0]) | {"precision": "fp16", "batch": 8}
    with table.open("a") as f:
        f.write(json.dumps(meta) + "\n")
    one_line_error(*run_cli("table", "show", "--table", str(table))[::2], "a second metadata record")
