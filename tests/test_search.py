"""The search end to end on a real CPU table of the tiny space, with short digits training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latbench.cli import main
from nas.executors import LocalExecutor
from nas.pool import load_pool, make_pool
from latbench.space import load_space

TRAIN = ["--epochs", "1", "--data", "digits", "--width-mult", "0.25"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A quick CPU table with the blocks of 8 tiny networks (the rest is estimated)."""
    path = tmp_path_factory.mktemp("search") / "cpu.jsonl"
    try:
        main(["build-table", "--device", "cpu", "--sample", "8", "--sample-space", "tiny",
              "--out", str(path), "--quick"])
    except SystemExit as e:
        assert e.code == 0
    return path


@pytest.fixture(scope="module")
def pool(table, tmp_path_factory) -> tuple[Path, float, float]:
    p = make_pool(table, load_space("tiny"), 256, seed=0, groups=[])
    path = tmp_path_factory.mktemp("pool") / "pool.npz"
    p.save(path)
    lo, hi = np.quantile(p.latency_ms, [0.3, 0.7])
    return path, float(lo), float(hi)


def search_args(table, pool, out, budget=3, method="lamcts"):
    path, lo, hi = pool
    return ["search", "--table", str(table), "--space", "tiny", "--pool", str(path), "--latency-min",
            f"{lo:.6f}", "--latency-max", f"{hi:.6f}", "--budget", str(budget), "--method", method,
            "--out", str(out)] + TRAIN


def finished(out: Path) -> list[dict]:
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in recs if r["type"] in ("done", "failed")]


def test_sample_counts_groups(run_cli, table, tmp_path):
    code, out, err = run_cli("sample", "--table", str(table), "--space", "tiny", "--n", "512",
                             "--groups", "1,2", "--out", str(tmp_path / "p.npz"))
    assert code == 0, err
    pool = load_pool(tmp_path / "p.npz")
    assert pool.X.shape == (512, 41) and sum(c for *_, c in pool.group_counts([1, 2])) == 512
    assert "[0, 1)" in out and ((pool.measured_fraction >= 0) & (pool.measured_fraction <= 1)).all()


def test_search_writes_results_topk_and_best_network(run_cli, table, pool, tmp_path):
    out = tmp_path / "s"
    code, stdout, err = run_cli(*search_args(table, pool, out))
    assert code == 0, err
    done = finished(out)
    assert len(done) == 3 and len({r["pool_index"] for r in done}) == 3
    assert all(r["type"] == "done" and 0 <= r["top1"] <= 100 and r["measured_fraction"] == 1.0 for r in done)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["top"][0]["top1"] == max(r["top1"] for r in done)
    assert (out / "best.json").is_file() and (out / "best.onnx").is_file()
    assert "top 3" in stdout


def test_sigkill_then_resume_runs_exactly_the_budget(table, pool, tmp_path):
    out = tmp_path / "s"
    args = [sys.executable, "-m", "latbench"] + search_args(table, pool, out, budget=4, method="random")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.is_file() and '"type":"done"' in log.read_text()):
        time.sleep(0.1)
    assert session_processes(p.pid) - {p.pid}, "no worker was running"
    os.kill(p.pid, signal.SIGKILL)  # the driver only, mid-run: its workers must die with it
    p.wait()
    deadline = time.time() + 5  # the kernel's SIGKILL (prctl) is at once; the watchdog looks every second
    while session_processes(p.pid) and time.time() < deadline:
        time.sleep(0.1)
    orphans = session_processes(p.pid)
    if orphans:
        os.killpg(p.pid, signal.SIGKILL)
    assert not orphans, f"workers outlived the killed driver: {orphans}"
    before = finished(out)
    assert 1 <= len(before) < 4
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    after = finished(out)
    assert len(after) == 4 and len({x["trial"] for x in after}) == 4
    assert len({x["pool_index"] for x in after}) == 4  # no network trained twice
    assert [x["trial"] for x in after[:len(before)]] == [x["trial"] for x in before]  # nothing lost


def session_processes(sid: int) -> set[int]:
    """Live processes of session `sid` (Linux /proc; the driver was started in a new session)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != b"Z":
            pids.add(int(stat.parent.name))
    return pids


def test_bad_options_fail_before_any_work(run_cli, table, pool, tmp_path):
    path, lo, hi = pool
    cases = [
        (["--latency-min", "500", "--latency-max", "600"], "no network of the 256-network pool"),
        (["--budget", "0"], "'--budget': Input should be greater than or equal to 1"),
        (["--data", "mnist"], "mnist"),
        (["--data", f"imagefolder:{tmp_path}/nowhere"], "nowhere"),
        (["--method", "evolution"], "'evolution' is not one of 'lamcts', 'bo', 'random'"),
        (["--latency-max", "inf"], "'--latency-max'"),
    ]
    for extra, problem in cases:
        out = tmp_path / "s"
        code, _, err = run_cli(*search_args(table, pool, out), *extra)
        assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not (out / "results.jsonl").exists()


def test_a_killed_worker_costs_only_its_trial(table):
    ex = LocalExecutor(2)
    x = load_space("tiny").random(1, 0)[0].tolist()
    payload = {"space": "tiny", "x": x, "measure_table": None,
               "train": {"data": "digits", "epochs": 1, "width_mult": 0.25, "threads": 1}}
    try:
        ex.submit(0, payload)
        ex.submit(1, payload)
        time.sleep(1.0)
        os.kill(ex.workers[0].process.pid, signal.SIGKILL)  # dies mid-trial
        results = {}
        deadline = time.time() + 300
        while len(results) < 2 and time.time() < deadline:
            results.update(dict(ex.poll(1.0)))
    finally:
        ex.shutdown()
    assert set(results) == {0, 1} and all(r["status"] == "ok" for r in results.values())
    assert results[0]["top1"] == results[1]["top1"]  # the retried trial trained the same network


@pytest.mark.ray
@pytest.mark.slow
def test_search_on_local_ray(run_cli, table, pool, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code, _, err = run_cli(*search_args(table, pool, tmp_path / "s", budget=2), "--ray", "auto")
    finally:
        ray.shutdown()
    assert code == 0, err
    assert len(finished(tmp_path / "s")) == 2
