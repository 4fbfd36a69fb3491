"""Every distribution latbench and nas import is declared in pyproject.toml (a package that only
happens to come along with another, as click once did with typer, breaks `pip install latbench`
the day it stops coming along); the optional ones only in an extra, and imported lazily."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Modules of distributions that are not installed here (so metadata cannot name them).
NOT_INSTALLED = {"tensorrt": "tensorrt"}

tomllib = pytest.importorskip("tomllib")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def imported_modules() -> dict[str, bool]:
    """Top-level module -> whether some import of it is at module level (not lazy)."""
    out: dict[str, bool] = {}
    for path in sorted((REPO / "latbench").rglob("*.py")) + sorted((REPO / "nas").rglob("*.py")):
        tree = ast.parse(path.read_text())
        lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("latbench", "nas", "layer_configs"):
                    continue
                out[top] = out.get(top, False) or id(node) not in lazy
    return out


def test_imports_match_the_declared_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = requirement_names(project["dependencies"])
    extras = {name: requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()}
    optional = set().union(*extras.values()) - required
    owners = md.packages_distributions()
    problems = []
    for module, eager in sorted(imported_modules().items()):
        dists = {normalise(d) for d in owners.get(module, [NOT_INSTALLED.get(module, module)])}
        if dists & required:
            continue
        if dists & optional:
            if eager:
                problems.append(f"{module}: optional ({', '.join(dists)}) but imported at module level")
            continue
        problems.append(f"{module}: imported, but its distribution ({', '.join(sorted(dists))}) is not declared")
    assert not problems, "\n".join(problems)


def installed_closure(requirements: list[str]) -> set[str]:
    """Distributions that installing `requirements` (no extras) brings, from installed metadata."""
    from packaging.requirements import Requirement

    todo, seen = [Requirement(r) for r in requirements], set()
    while todo:
        req = todo.pop()
        name = normalise(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in md.requires(req.name) or []]
        except md.PackageNotFoundError:
            pass
    return seen


BLOCKER = '''import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed without extras)", name=name)
sys.meta_path.insert(0, _NotInstalled())
'''


def test_the_cli_runs_when_installed_without_extras(tmp_path):
    """`pip install latbench` (no extras): every module of a distribution that only an extra (or
    nothing declared) brings is made unimportable, and the commands that need no extra run."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = installed_closure(project["dependencies"]) | {"latbench", "pip", "setuptools"}
    blocked = sorted({m for m, dists in md.packages_distributions().items()
                      if not {normalise(d) for d in dists} & core and m.isidentifier()})
    assert "ray" in blocked and "hypothesis" in blocked and "numpy" not in blocked
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    table = REPO / "tables" / "cpu-torch-fp32-b1.jsonl"
    for args in (["--help"], ["info"], ["arch", "show", "gpunet-1"],
                 ["predict", "gpunet-1", "--table", str(table), "--missing", "estimate", "--json"]):
        r = subprocess.run([sys.executable, "-m", "latbench", *args], capture_output=True, text=True, cwd=tmp_path,
                           env=env, timeout=120)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    r = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, text=True, env=env)
    assert "not installed without extras" in r.stderr  # the blocker works
