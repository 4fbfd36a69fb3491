"""The GPU session runner, rehearsed on this CPU exactly as a lent GPU would run it: from the
checkout on PYTHONPATH, no package index, the packages a lent GPU machine lacks made unimportable,
every step run and archived within the device tool's limits, and a second session resuming the
table the first one archived."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latbench.errors import LatbenchError
from latbench.session import Archive, Session
from latbench.session.plan import StepRule, allot, gpu_plan
from latbench.validate import MIN_FIT_NETWORKS

REPO = Path(__file__).resolve().parents[1]
#: What a lent GPU machine lacks (issue 12; the device tool's KINDS.md).
ABSENT = ("onnx_graphsurgeon", "ray", "optuna", "tensorrt", "click")
#: Import names of Python packages a lent GPU machine has beyond the standard library (the device
#: tool's KINDS.md, package list read on 2026-11-17), as far as latbench could use them.
GPU_MACHINE = {
    "torch", "triton", "numpy", "scipy", "onnx", "onnxruntime", "botorch", "gpytorch", "sklearn",
    "pandas", "pyarrow", "matplotlib", "typer", "rich", "filelock", "pynvml", "pytest", "hypothesis",
    "timm", "torchvision", "yaml", "PIL", "tqdm", "psutil", "packaging",
}
BLOCKER = f'''import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(name + " is not on the lent GPU machine (blocked by the rehearsal)", name=name)
sys.meta_path.insert(0, _Absent())
'''
NAME = re.compile(r"[A-Za-z0-9._-]+")


def rehearse(tmp_path: Path, out: str, tables: Path, budget: int, results: Path | None = None
             ) -> subprocess.CompletedProcess:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PIP_NO_INDEX="1", PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]))
    return subprocess.run(
        [sys.executable, "-m", "latbench.session", "--rehearse", "--out", str(tmp_path / out), "--work",
         str(tmp_path / f"{out}-work"), "--tables", str(tables), "--budget", str(budget),
         "--results", str(results or tmp_path / "no-results")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=budget + 120)


def check_archive(out: Path) -> dict:
    files = list(out.iterdir())
    assert all(f.is_file() for f in files) and len(files) <= 8  # the device tool brings back 8 files
    assert all(NAME.fullmatch(f.name) and f.stat().st_size < 16 << 20 for f in files)
    return json.loads((out / "session.json").read_text())


@pytest.mark.slow
def test_rehearsal_runs_every_step_archives_and_a_second_session_resumes(tmp_path):
    first = rehearse(tmp_path, "one", tmp_path / "no-tables", 60)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = tmp_path / "one"
    state = check_archive(out)
    steps = {s["step"]: s for s in state["steps"]}
    assert list(steps) == list(gpu_plan().steps)  # the GPU plan's steps, in its order
    for name, s in steps.items():
        assert s["status"] == "ok" or (s["status"] == "skipped" and s["reason"]), (name, s)
    assert steps["fresh"]["status"] == "skipped"  # nothing stored by an earlier session yet
    log = (out / "session.log").read_text()
    assert all(f"== {name}" in log for name in steps) and "is not on the lent GPU machine" not in log
    table = out / "cpu-torch-fp32-b1.jsonl"
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert sum(r["type"] == "row" for r in rows) > 20
    report = json.loads((out / "validation.json").read_text())
    assert report["sobol"]["networks"] >= 1
    assert report["sobol"]["calibration"] or report["sobol"]["networks"] < MIN_FIT_NETWORKS
    assert report["reference"]["networks"] == 2
    if steps["protocol"]["result"].get("networks"):  # the other protocols' sums beside the table's
        net = report["protocol"]["networks"][0]
        assert report["protocol"]["main_protocol"] == "warm" and set(net["sum_us"]) == {"warm", "weights-cold", "cold"}
        assert net["sum_us"]["warm"] > 0 and net["e2e_over_sum"]["warm"] == net["e2e_us"] / net["sum_us"]["warm"]
    bench = [json.loads(line) for line in (out / "harness_bench.jsonl").read_text().splitlines()]
    assert [b["type"] for b in bench][:1] == ["header"] and sum(b["type"] == "row" for b in bench) >= 1
    assert state["costs"]["s_per_key"] > 0 and state["costs"]["s_per_network"] > 0

    from latbench.cli.ship import ship

    (tmp_path / "repo" / "tables").mkdir(parents=True)
    shipped = {p.name for p in ship(out, tmp_path / "repo")}
    assert {"cpu-torch-fp32-b1.jsonl", "validation.json", "validate_sobol.png"} <= shipped

    assert any(p.name.startswith("session-") and p.suffix == ".json" for p in (tmp_path / "repo").rglob("*"))
    # The archive stands in for the committed tables/, the shipped results for bench/results/.
    second = rehearse(tmp_path, "two", out, 45, tmp_path / "repo" / "bench" / "results")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    state2 = check_archive(tmp_path / "two")
    harness2 = {s["step"]: s for s in state2["steps"]}["harness"]
    assert harness2["status"] == "skipped" and "already shipped" in harness2["reason"]  # evidence gathered once
    ship(tmp_path / "two", tmp_path / "repo")
    merged = json.loads((tmp_path / "repo" / "bench" / "results" / "cpu" / "validation.json").read_text())
    assert set(report) <= set(merged)  # session two's reports merged into session one's
    assert "resuming" in (tmp_path / "two" / "session.log").read_text()
    grown = (tmp_path / "two" / "cpu-torch-fp32-b1.jsonl").read_text().splitlines()
    assert len(grown) >= len(rows)
    fresh = {s["step"]: s for s in state2["steps"]}["fresh"]
    if report["sobol"]["calibration"]:  # checked against session one's calibration, not refit
        assert fresh["status"] == "ok" and fresh["result"]["networks"] >= 1, fresh
    else:  # a loaded machine: session one measured too few networks to fit one
        assert fresh["status"] == "skipped" and "no calibration" in fresh["reason"], fresh


def test_a_step_past_its_limit_is_killed_and_the_session_goes_on(tmp_path):
    session = Session(gpu_plan(), tmp_path / "out", tmp_path / "work", 60)
    t0 = time.monotonic()
    status = session._child([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 1.0)
    assert status == "killed at its time limit" and time.monotonic() - t0 < 10
    assert "started" in (tmp_path / "out" / "session.log").read_text()
    assert session._child([sys.executable, "-c", "raise SystemExit(3)"], 10) == "failed (exit 3)"


def test_time_is_shared_by_value_and_reserves():
    later = [StepRule("harness", cap=60, floor=20, reserve=45)]
    assert allot(StepRule("validate", share=1.0, floor=30), 300, later) == 300 - 8 - 45
    assert allot(StepRule("smoke", cap=60, floor=20), 300, later) == 60
    assert allot(StepRule("validate", share=1.0, floor=30), 70, later) == 0  # below its floor: skipped
    assert allot(StepRule("reference", share=0.5, floor=5), 108, []) == 50


def test_archive_is_atomic_and_gzips_what_is_too_big(tmp_path, monkeypatch):
    import gzip

    import latbench.session as session

    archive = Archive(tmp_path / "out")
    (tmp_path / "out" / "stale.partial").write_text("x")
    Archive(tmp_path / "out")  # a new session clears partial copies a kill left behind
    assert not (tmp_path / "out" / "stale.partial").exists()
    src = tmp_path / "t.jsonl"
    src.write_text("x" * 1000)
    monkeypatch.setattr(session, "MAX_FILE_BYTES", 100)
    archive.put(src)
    assert gzip.decompress((tmp_path / "out" / "t.jsonl.gz").read_bytes()) == b"x" * 1000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["session.log", "t.jsonl.gz"]


def module_imports(path: Path) -> set[str]:
    """Modules imported at the top level of a file (inside try/if too; not inside functions)."""
    names, tree = set(), ast.parse(path.read_text())
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, (ast.If, ast.Try)):
            nodes += node.body + node.orelse + getattr(node, "handlers", []) + getattr(node, "finalbody", [])
        elif isinstance(node, ast.ExceptHandler):
            nodes += node.body
    return names


def own_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in ("latbench", "nas"):
        return None
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_runner_imports_only_what_a_lent_gpu_machine_has():
    """Every module the runner loads, followed through latbench and nas, imports at its top level
    only the standard library and packages that machine has. (Imports inside functions are
    exercised by the rehearsal, which makes the absent packages unimportable.)"""
    start = [REPO / "latbench/session/__init__.py", REPO / "latbench/session/__main__.py",
             REPO / "latbench/session/steps.py", REPO / "bench/harness_bench.py",
             REPO / "latbench/backends/torch_backend.py"]  # loaded by name by the backend registry
    start += sorted((REPO / "tests/gpu").glob("*.py"))
    seen, todo, external = set(), list(start), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in module_imports(path):
            own = own_file(name)
            if own is not None:
                todo.append(own)
                parent = own_file(name.rsplit(".", 1)[0]) if "." in name else None
                if parent is not None:
                    todo.append(parent)
            elif name.split(".")[0] not in ("latbench", "nas"):
                external.add(name.split(".")[0])
    third_party = {n for n in external if n not in sys.stdlib_module_names and n != "__future__"}
    missing = third_party - GPU_MACHINE
    assert not missing, f"the runner imports {sorted(missing)}, which a lent GPU machine lacks"
    assert REPO / "latbench/validate.py" in seen


def test_ship_merges_reports_and_keeps_the_fuller_protocol_comparison(tmp_path):
    from latbench.cli.ship import _merged_reports

    def part(sums: dict, name="gpunet-0", e2e=100.0):
        return {"main_protocol": "weights-cold", "median_us": {"warm": {"k": 1.0}},
                "networks": [{"name": name, "e2e_us": e2e, "sum_us": sums}]}

    full = {"weights-cold": 98.0, "warm": 90.0, "cold": 105.0}
    committed, new = tmp_path / "committed.json", tmp_path / "new.json"
    committed.write_text(json.dumps({"sobol": {"networks": 1}, "protocol": part(full)}))
    new.write_text(json.dumps({"protocol": part({"weights-cold": 98.0, "warm": None, "cold": None})
                               | {"networks": part(full)["networks"] + part(full, "gpunet-1", 200.0)["networks"]}}))
    merged = _merged_reports(committed, new)
    assert merged["sobol"] == {"networks": 1}  # a part the new session did not measure is kept
    assert [n["name"] for n in merged["protocol"]["networks"]] == ["gpunet-0", "gpunet-1"]
    new.write_text(json.dumps({"protocol": part({"weights-cold": 98.0, "warm": None, "cold": None})}))
    assert _merged_reports(committed, new)["protocol"]["networks"][0]["sum_us"] == full  # fuller one kept
    new.write_text(json.dumps({"protocol": part(full, e2e=-1.0)}))
    with pytest.raises(LatbenchError, match="e2e_us"):
        _merged_reports(committed, new)
