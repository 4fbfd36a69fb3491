"""Faults: a full disk and SIGKILL at random moments lose nothing, duplicate nothing, and leave
everything resumable; a refused write leaves no half-written or temporary file.

A full disk is a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored): the kernel refuses a write
past N bytes with EFBIG, as a full disk refuses one with ENOSPC (tests/test_jsonlog.py patches
os.write with ENOSPC itself).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latbench.table import load_table

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and /proc: Linux")


def latbench(*args, cwd, fsize: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "latbench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit if fsize else None,
                          env=os.environ | {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})


def refused(r: subprocess.CompletedProcess, what: str = "") -> None:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert lines[-1].startswith("latbench: error: ") and what in lines[-1], r.stderr


def no_partials(folder: Path) -> None:
    assert not list(folder.rglob("*.partial")), "a temporary file was left behind"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A measured quick CPU table of the smoke grid (6 keys) plus one tiny network's blocks."""
    d = tmp_path_factory.mktemp("faults")
    r = latbench("build-table", "--device", "cpu", "--grid", "smoke_grid", "--space", "tiny", "--n", "1",
                 "--out", d / "t.jsonl", "--quick", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "t.jsonl"


# -- a full disk -----------------------------------------------------------------------------------
def test_a_full_disk_while_appending_rows_keeps_the_table_whole_and_resumable(tmp_path):
    out = tmp_path / "t.jsonl"
    r = latbench("build-table", "--device", "cpu", "--grid", "smoke_grid", "--out", out, "--quick", cwd=tmp_path,
                 fsize=2600)  # the metadata and a row or two fit
    refused(r, "cannot append")
    assert out.read_bytes().endswith(b"\n")  # no torn row kept
    kept = load_table(out).rows
    assert 1 <= len(kept) < 6
    r = latbench("build-table", "--device", "cpu", "--grid", "smoke_grid", "--out", out, "--quick", cwd=tmp_path)
    assert r.returncode == 0 and f"{len(kept)} already in the table" in r.stderr, r.stderr
    keys = [json.loads(line)["key"] for line in out.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == 6  # nothing lost, nothing measured twice


@pytest.mark.parametrize("what", ["csv", "parquet", "merge", "sample", "chart", "onnx"])
def test_a_full_disk_leaves_no_half_written_output(table, tmp_path, what):
    """Each whole-file output is refused in one line and leaves the old file (here "old") as it
    was, with no temporary file beside it."""
    target = {"csv": "o.csv", "parquet": "o.parquet", "merge": "m.jsonl", "sample": "p.npz", "chart": "c.png",
              "onnx": "m.onnx"}[what]
    if what != "merge":
        (tmp_path / target).write_text("old")
    args = {"csv": ["table", "export", "--table", table, "--csv", target],
            "parquet": ["table", "export", "--table", table, "--parquet", target],
            "merge": ["table", "merge", "--table", table, "--table", table, "--out", target],
            "sample": ["sample", "--table", table, "--space", "tiny", "--n", "256", "--out", target],
            "chart": ["plot", "compare", "--table", table, "--table", table, "--out", target],
            "onnx": ["export", "gpunet-0", "--onnx", target, "--no-check"]}[what]
    r = latbench(*args, cwd=tmp_path, fsize=1024)
    refused(r, "cannot write")
    if what == "merge":
        assert not (tmp_path / target).exists()
    else:
        assert (tmp_path / target).read_text() == "old"
    no_partials(tmp_path)


# -- SIGKILL at random moments ---------------------------------------------------------------------
def kill_at_random(args, cwd, rng, until_done: int = 8, window=(0.3, 3.0), check=None) -> int:
    """Run `latbench args` again and again, each run SIGKILLed after a random delay, until one
    finishes; `check` runs after every kill. Returns how many runs were killed."""
    kills = 0
    for _ in range(until_done):
        p = subprocess.Popen([sys.executable, "-m", "latbench", *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(REPO)})
        try:
            p.wait(timeout=rng.uniform(*window))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            kills += 1
            if check:
                check()
            continue
        assert p.returncode == 0, p.stderr.read()
        return kills
    # the last runs were all killed: one more, to the end
    r = latbench(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return kills


@pytest.mark.parametrize("what", ["merge", "export"])
def test_sigkill_during_merge_or_export_leaves_the_old_state_or_the_new(tmp_path, what):
    """Killed at random moments of a run (timed once in full first), the output is absent or
    whole; the next run finishes and leaves no temporary file."""
    table = tmp_path / "shipped.jsonl"  # 940 rows: reading and writing take a while to cut into
    table.write_bytes((REPO / "tables" / "cpu-torch-fp32-b1.jsonl").read_bytes())
    target = tmp_path / ("m.jsonl" if what == "merge" else "o.csv")
    args = (["table", "merge", "--table", table, "--table", table, "--out", target] if what == "merge"
            else ["table", "export", "--table", table, "--csv", target])
    rows = len(load_table(table).rows)

    def whole():
        if target.exists():  # whole or absent, never half
            if what == "merge":
                assert len(load_table(target).rows) == rows
            else:
                assert len(target.read_text().splitlines()) == rows + 1
    t0 = time.monotonic()
    assert latbench(*args, cwd=tmp_path).returncode == 0
    full = time.monotonic() - t0
    rng, kills = random.Random(what), 0
    for _ in range(4):
        target.unlink(missing_ok=True)  # merge writes a new file only
        p = subprocess.Popen([sys.executable, "-m", "latbench", *map(str, args)], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=os.environ | {"PYTHONPATH": str(REPO)})
        time.sleep(rng.uniform(0.3, 1.0) * full)
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        whole()
    target.unlink(missing_ok=True)
    assert latbench(*args, cwd=tmp_path).returncode == 0
    whole()
    assert target.exists() and kills >= 2
    no_partials(tmp_path)  # a killed writer's temporary file went with the next write


@pytest.mark.slow
def test_sigkill_during_validate_then_resume(table, tmp_path):
    """validate killed at random moments (filling blocks, timing networks, writing the report):
    every key and every network is measured once, the report is whole."""
    t = tmp_path / "t.jsonl"
    t.write_bytes(table.read_bytes())
    nets = tmp_path / "t.networks.jsonl"
    report = tmp_path / "r.json"

    def consistent():
        keys = [json.loads(line)["key"] for line in t.read_text().splitlines()[1:]]
        assert len(keys) == len(set(keys))
        if nets.exists():
            ids = [json.loads(line)["network_id"] for line in nets.read_text().splitlines()]
            assert len(ids) == len(set(ids))
        if report.exists():
            json.loads(report.read_text())
    args = ["validate", "--table", t, "--space", "tiny", "--n", "2", "--seed", "3", "--report", report]
    kills = kill_at_random(args, tmp_path, random.Random(1), window=(1.5, 6.0), check=consistent)
    consistent()
    assert kills >= 1 and json.loads(report.read_text())["networks"] == 2
    no_partials(tmp_path)


# -- stdout that cannot be written -----------------------------------------------------------------
@pytest.mark.parametrize("args", [["info"], ["arch", "show", "gpunet-1", "--json"], ["arch", "decode", "1,2"]])
def test_stdout_on_a_full_disk_is_one_line(tmp_path, args):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "latbench", *args], stdout=full, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("latbench: error: ")


def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "latbench", "arch", "show", "gpunet-2", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(REPO)})
    p.stdout.close()  # `| head -0`
    assert p.wait(timeout=60) == 141 and p.stderr.read() == b""


# -- Ctrl-C ----------------------------------------------------------------------------------------
def test_ctrl_c_during_a_search_is_one_line_and_resumable(tmp_path):
    """Ctrl-C reaches the driver and its training workers (one process group): exit 130 with
    "latbench: interrupted" alone (typer returned 130 silently; workers printed tracebacks), and
    --resume continues the search."""
    shipped = REPO / "tables" / "cpu-torch-fp32-b1.jsonl"
    pool = tmp_path / "pool.npz"
    r = latbench("sample", "--table", shipped, "--space", "tiny", "--n", "16", "--out", pool, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    args = ["search", "--table", shipped, "--space", "tiny", "--pool", pool, "--latency-min", "0.5",
            "--latency-max", "3", "--budget", "3", "--n-init", "1", "--epochs", "1", "--width-mult", "0.1",
            "--train-fraction", "0.1", "--missing", "estimate", "--out", tmp_path / "s"]
    p = subprocess.Popen([sys.executable, "-m", "latbench", *map(str, args)], cwd=tmp_path, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                         env=os.environ | {"PYTHONPATH": str(REPO)})
    time.sleep(6)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the search ended before the interrupt (a fast machine)")
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "search (" not in line]
    assert p.returncode == 130 and lines == ["latbench: interrupted"], err
    r = latbench(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
