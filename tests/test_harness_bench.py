"""bench/harness_bench.py rehearsed on the CPU, as a subprocess: records stream to --jsonl as each
block finishes, --budget-s and SIGINT stop the run between blocks and say so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "harness_bench.py"


def bench_cmd(jsonl: Path, *extra: str, blocks: int = 2) -> list[str]:
    return [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--blocks", str(blocks),
            "--repeats", "2", "--jsonl", str(jsonl), *extra]


def records(jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


@pytest.mark.slow
def test_rows_stream_to_jsonl_and_json_holds_the_same(tmp_path):
    jsonl, doc = tmp_path / "x.jsonl", tmp_path / "x.json"
    r = subprocess.run(bench_cmd(jsonl, "--json", str(doc)), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = records(jsonl)
    assert [x["type"] for x in recs] == ["header", "row", "row", "summary"]
    header, rows, summary = recs[0], recs[1:3], recs[3]
    assert header["device"]["kind"] == "cpu" and header["batch"] == 1 and header["precision"] == "fp32"
    assert header["methods"][0] == "latbench warm"
    for row in rows:
        assert row["reference_us"] > 0
        ours = row["latbench warm"]
        assert ours["median_us"] > 0 and ours["s_per_key"] > 0 and ours["cov"] >= 0
    assert summary["blocks_done"] == 2 and summary["stopped"] is None
    assert json.loads(doc.read_text()) == {"header": header, "rows": rows, "summary": summary}
    lines = r.stdout.strip().splitlines()
    assert sum(line.startswith("[") for line in lines) == 2  # one line per block
    assert lines[-1].startswith("target latbench warm")  # the summary ends the output
    assert "s/key" in r.stdout and " us" in r.stdout


@pytest.mark.slow
def test_budget_stops_after_the_first_block(tmp_path):
    jsonl = tmp_path / "x.jsonl"
    r = subprocess.run(bench_cmd(jsonl, "--budget-s", "0.001"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = records(jsonl)
    assert [x["type"] for x in recs] == ["header", "row", "summary"]
    assert recs[-1]["stopped"].startswith("budget: stopped after 1 of 2 blocks")
    assert "budget: stopped after 1 of 2 blocks" in r.stdout


@pytest.mark.slow
def test_sigint_keeps_finished_rows_and_ends_with_the_summary(tmp_path):
    jsonl = tmp_path / "x.jsonl"
    p = subprocess.Popen(bench_cmd(jsonl, blocks=4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if jsonl.exists() and '"type": "row"' in jsonl.read_text():
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)  # what bench/gpu_session.sh's time limit sends
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 130, out
    recs = records(jsonl)
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "summary"
    assert recs[-1]["stopped"].startswith("SIGINT: stopped after")
    assert 1 <= recs[-1]["blocks_done"] == len(recs) - 2 < 4
    assert out.strip().splitlines()[-1].startswith("target latbench warm")
