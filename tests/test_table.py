"""The table store: append-only, crash-safe, resumable, concurrent, mergeable, exportable."""

from __future__ import annotations

import json
import multiprocessing as mp

import pandas as pd
import pytest

from latbench.errors import TableError
from latbench.table import TableWriter, append_calibration, load_table, merge_tables

HARNESS = {"warmup_s": 0.0, "sample_s": 0.01, "min_samples": 5, "min_time_s": 0.0, "max_cov": 0.05}
META = {"device": {"kind": "cpu", "name": "test cpu", "threads": 2}, "backend": {"name": "torch", "version": "x", "options": {}},
        "precision": "fp32", "batch": 1, "protocol": "warm", "harness": HARNESS}
CALIBRATION = {"model": "linear", "features": ["sum_us", "n_blocks", "one"], "coef": [1.0, 0.0, 0.0],
               "cache_bytes": 0, "fitted_range_us": [1.0, 10.0]}


def key(tag: str) -> str:
    """A valid block key per short tag ("a", "k17"): a table checks that every key parses."""
    n = int(tag[1:]) + 30 if tag[0] == "k" and tag[1:].isdigit() else ord(tag) - 96
    return f"conv-i{n}-o8-h8-w8-k3-s1-relu"


def row(tag, us=10.0, status="ok"):
    return {"key": key(tag), "median_us": us if status == "ok" else None, "p10_us": us, "p90_us": us, "cov": 0.01,
            "n": 5, "status": status, "reason": "" if status == "ok" else "boom", "measured_at": "now"}


def keys(*tags) -> set:
    return {key(t) for t in tags}


def test_write_resume_and_read(tmp_path):
    path = tmp_path / "t.jsonl"
    w = TableWriter(path, META)
    assert w.add(row("a")) and w.add(row("b", status="failed"))
    w2 = TableWriter(path, META)  # a second run resumes
    assert w2.done() == keys("a", "b") and w2.done(include_failed=False) == keys("a")
    assert not w2.add(row("a", 99.0))  # an ok key is never measured twice
    assert w2.add(row("b", 5.0))  # a retried failure supersedes
    t = load_table(path)
    assert t.ok() == {key("a"): 10.0, key("b"): 5.0} and t.counts()["failed"] == 0
    df = t.to_pandas()
    assert list(df.columns[:9]) == ["key", "median_us", "p10_us", "p90_us", "cov", "n", "status", "reason", "measured_at"]
    assert t.meta["units"]["median_us"].startswith("microseconds")


def test_driver_counts_by_major_version(tmp_path):
    """Lent H200s differ in the driver's patch level: one table grows across them."""
    gpu = {"kind": "cuda", "name": "NVIDIA H200", "cuda": "13.0", "threads": None}
    path = tmp_path / "h200.jsonl"
    TableWriter(path, META | {"device": gpu | {"driver": "580.159.03"}})
    TableWriter(path, META | {"device": gpu | {"driver": "580.159.04"}})
    with pytest.raises(TableError, match="device.driver_major: '580' != '590'"):
        TableWriter(path, META | {"device": gpu | {"driver": "590.10.01"}})


def test_other_settings_are_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    TableWriter(path, META)
    with pytest.raises(TableError, match="precision: 'fp32' != 'fp16'"):
        TableWriter(path, META | {"precision": "fp16"})


def test_partial_last_line_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "t.jsonl"
    w = TableWriter(path, META)
    w.add(row("a"))
    with open(path, "ab") as f:
        f.write(b'{"type": "row", "key": "b", "med')  # a write cut short
    assert set(load_table(path).rows) == keys("a")
    TableWriter(path, META).add(row("c"))
    assert set(load_table(path).rows) == keys("a", "c")
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_damaged_line_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    TableWriter(path, META).add(row("a"))
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\nGARBAGE\n" + text[1] + "\n")
    with pytest.raises(TableError, match="line 2: malformed JSON"):
        load_table(path)
    with pytest.raises(TableError, match="no such table"):
        load_table(tmp_path / "missing.jsonl")


def _writer(path, worker):
    w = TableWriter(path, META)
    for i in range(200):
        w.add(row(f"k{(i * 7 + worker) % 150}", float(worker + 1)))


def test_two_processes_do_not_corrupt(tmp_path):
    path = tmp_path / "t.jsonl"
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = path.read_text().splitlines()
    stored = [json.loads(line)["key"] for line in lines[1:]]
    assert sorted(stored) == sorted(key(f"k{i}") for i in range(150))  # each key exactly once


def test_merge_export_and_calibration(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    TableWriter(a, META).add(row("x", 1.0))
    wb = TableWriter(b, META)
    wb.add(row("x", status="failed"))
    wb.add(row("y", 2.0))
    n, both = merge_tables(a, b, tmp_path / "c.jsonl")
    assert (n, both) == (2, 1)
    assert load_table(tmp_path / "c.jsonl").ok() == {key("x"): 1.0, key("y"): 2.0}
    with pytest.raises(TableError, match="exists"):
        merge_tables(a, b, tmp_path / "c.jsonl")
    other = tmp_path / "o.jsonl"
    TableWriter(other, META | {"batch": 8})
    with pytest.raises(TableError, match="batch: 1 != 8"):
        merge_tables(a, other, tmp_path / "d.jsonl")
    append_calibration(a, CALIBRATION)
    assert load_table(a).calibration["model"] == "linear"
    df = load_table(a).to_pandas()
    df.to_parquet(tmp_path / "a.parquet")
    assert pd.read_parquet(tmp_path / "a.parquet")["key"].tolist() == [key("x")]


def test_a_table_without_its_final_newline_keeps_its_last_record(tmp_path):
    """The last line (here the calibration) lacks its newline: it is read, and the next append gives
    it its newline back instead of deleting it."""
    path = tmp_path / "t.jsonl"
    TableWriter(path, META).add(row("a"))
    append_calibration(path, CALIBRATION)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert load_table(path).calibration["model"] == "linear"
    TableWriter(path, META).add(row("b"))
    t = load_table(path)
    assert t.calibration["model"] == "linear" and set(t.rows) == keys("a", "b")


@pytest.mark.parametrize("change, problem", [
    (lambda r: r.update(median_us=float("nan")), "NaN is not a JSON number"),
    (lambda r: r.update(median_us=-5.0), r"median_us: -5.0 is outside the allowed range \[0.001, "),
    (lambda r: r.update(p10_us=99.0), "p10_us <= median_us <= p90_us does not hold"),
    (lambda r: r.update(n=0), r"n: 0 is outside the allowed range \[1, "),
    (lambda r: r.update(key="garbage"), "unknown block kind 'garbage'"),
    (lambda r: r.update(status="maybe"), "is not one of ok, failed"),
    (lambda r: r.pop("median_us"), "median_us: must be a number, got null"),
])
def test_a_bad_row_is_refused_in_one_line_naming_the_record(tmp_path, change, problem):
    path = tmp_path / "t.jsonl"
    TableWriter(path, META).add(row("a"))
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    change(rec)
    path.write_text(lines[0] + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(TableError, match=problem) as err:
        load_table(path)
    assert "line 2" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("change, problem", [
    (lambda m: m.update(format="latbench-table/99"), "is not one this latbench reads"),
    (lambda m: m.update(batch=0), r"batch: 0 is outside the allowed range \[1, 4096\]"),
    (lambda m: m.update(precision="int4"), '"int4" is not one of fp32, fp16, bf16'),
    (lambda m: m["harness"].update(sample_s=-1), "harness.sample_s"),
    (lambda m: m.pop("device"), "missing field 'device'"),
])
def test_bad_metadata_is_refused(tmp_path, change, problem):
    path = tmp_path / "t.jsonl"
    TableWriter(path, META)
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta) + "\n")
    with pytest.raises(TableError, match=problem):
        load_table(path)


@pytest.mark.parametrize("change, problem", [
    (lambda c: c.update(coef=[-100.0, 0.0, -5.0], fitted_range_us=[1.0, 1e9]), "inside the range it was fitted on"),
    (lambda c: c.update(coef=[1.0]), "1 coefficients for 3 features"),
    (lambda c: c.update(model="cubic"), '"cubic" is not one of linear, per-kind'),
    (lambda c: c.update(fitted_range_us=[5.0, 1.0]), "low 5 exceeds high 1"),
])
def test_a_bad_calibration_is_never_applied(tmp_path, change, problem):
    from latbench.arch_io import load_arch
    from latbench.errors import LatbenchError
    from latbench.predictor import Predictor

    path = tmp_path / "t.jsonl"
    w = TableWriter(path, META)
    for tag in "abcdefghijklm":
        w.add(row(tag, 10.0 + ord(tag)))
    cal = dict(CALIBRATION)
    change(cal)
    with open(path, "a") as f:
        f.write(json.dumps({"type": "calibration", **cal}) + "\n")
    with pytest.raises(LatbenchError, match=problem):
        Predictor(load_table(path)).predict(load_arch("gpunet-1"), missing="estimate")
