"""build-table end to end: SIGKILL at random moments loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from latbench.keysets import grid_specs
from latbench.table import load_table

GRID = "layer_configs/smoke_grid.json"


def build_cmd(out, backend, grid=GRID):
    return [sys.executable, "-m", "latbench", "build-table", "--device", "cpu", "--backend", backend,
            "--grid", str(grid), "--out", str(out), "--quick", "--threads", "1"]


KILL_GRID = {"base": {"kind": "irb", "in_channels": 8, "out_channels": 8, "height": 8, "width": 8,
                      "kernel": 3, "stride": 1, "expansion": 2, "se": False, "act": "relu"},
             "product": {"expansion": [2, 3, 4, 5], "kernel": [3, 5, 7], "act": ["relu", "swish"],
                         "se": [False, True]}}


def rows_in(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_after_progress(p, out, delay: float) -> bool:
    """SIGKILL `p` `delay` seconds after it appended a row (whatever it is doing then: measuring,
    writing, exporting). Returns False when it finished first. Waiting for progress rather than
    for a fixed time keeps the test meaningful on slow and loaded machines alike."""
    start = rows_in(out)
    while p.poll() is None and rows_in(out) <= max(start, 1):
        time.sleep(0.01)
    if p.poll() is not None:
        return False
    time.sleep(delay)
    if p.poll() is not None:
        return False
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return True


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_sigkill_and_rerun_until_done(tmp_path, backend):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(KILL_GRID))
    out = tmp_path / "t.jsonl"
    want = {s.key for s in grid_specs(grid)}
    assert len(want) == 48
    rng = random.Random(0)
    kills = 0
    for attempt in range(60):
        p = subprocess.Popen(build_cmd(out, backend, grid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after_progress(p, out, rng.uniform(0.0, 0.4)):
            kills += 1
        elif p.returncode == 0:
            break
    else:
        pytest.fail("never finished")
    assert kills >= 2  # the run really was cut, more than once
    keys = [json.loads(line)["key"] for line in out.read_text().splitlines()[1:]]
    assert sorted(keys) == sorted(want)  # every key exactly once, no corrupt line
    assert all(r["status"] == "ok" for r in load_table(out).rows.values())


def test_cli_errors_leave_the_table_untouched(run_cli, tmp_path):
    out = tmp_path / "t.jsonl"
    code, _, err = run_cli("build-table", "--device", "cpu", "--grid", GRID, "--out", str(out), "--quick")
    assert code == 0, err
    before = out.read_bytes()
    bad_grid = tmp_path / "bad_grid.json"
    bad_grid.write_text('{"base": {"kind": "irb", "in_channels": 8}, "vary": {"kernel": [3]}}')
    cases = [
        (["--backend", "tvm"], "'tvm' is not one of"),
        (["--gpu", "a100"], "--gpu a100 does not match the visible device"),
        (["--backend", "tensorrt"], "TensorRT"),
        (["--grid", str(bad_grid)], "bad_grid.json"),
        (["--protocol", "weights-cold", "--device", "cpu"], "other settings"),
    ]
    for extra, problem in cases:
        args = ["build-table", "--grid", GRID, "--out", str(out), "--quick"] + extra
        if "--device" not in extra and "--gpu" not in extra:
            args += ["--device", "cpu"]
        code, _, err = run_cli(*args)
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert out.read_bytes() == before
    code, _, err = run_cli("build-table", "--device", "cpu", "--grid", GRID, "--out", "/proc/nope/t.jsonl")
    assert code == 2 and "/proc/nope" in err


def test_resume_skips_done_keys(run_cli, tmp_path):
    out = tmp_path / "t.jsonl"
    args = ("build-table", "--device", "cpu", "--grid", GRID, "--out", str(out), "--quick")
    assert run_cli(*args)[0] == 0
    t0 = time.time()
    code, _, err = run_cli(*args)
    assert code == 0 and "6 already in the table" in err and time.time() - t0 < 5


def test_deadline_stops_before_a_key_that_would_overrun(tmp_path):
    import time

    from latbench import backends
    from latbench.backends.base import BackendConfig
    from latbench.build import build_table
    from latbench.harness import HarnessSettings
    from latbench.keysets import grid_specs

    be = backends.create("torch", BackendConfig(device="cpu", threads=1))
    specs = grid_specs("smoke_grid")
    settings = HarnessSettings.for_device("cpu", quick=True)
    table = tmp_path / "t.jsonl"
    gone = build_table(specs, table, be, settings, progress=False, deadline=time.monotonic() - 1)
    assert gone.measured == 0 and gone.left == len(specs) and "left for lack of time" in gone.line()
    done = build_table(specs, table, be, settings, progress=False, deadline=time.monotonic() + 600)
    assert done.measured == len(specs) and done.left == 0 and len(done.seconds) == len(specs)
