"""The layering of latbench and nas: every import points down (or within its layer), and an
import inside a function is there only to defer a heavy optional package (torch, onnx,
matplotlib, scikit-learn, BoTorch, Ray, TensorRT), never to dodge a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Lowest first; a module belongs to the first entry that is a prefix of its name.
LAYERS = [
    ("errors", "version", "precision", "limits", "resources", "console", "schema", "jsonlog", "files", "nvml", "env",
     "cost", "progress"),
    ("blocks", "spec"),
    ("arch",),
    ("space",),
    ("timm_arch", "arch_io", "keysets"),
    ("builders", "onnx_export"),
    ("harness",),
    ("backends",),
    ("calibration",),
    ("table",),
    ("provenance", "rows"),
    ("features", "estimate", "predictor"),
    ("build", "validate", "distributed", "session"),
    ("nas",),
    ("plots",),
    ("cli", "__main__", "<root>"),
]
#: Modules that import a heavy optional package at their top: a function may import them lazily.
HEAVY = ("latbench.blocks.layers", "latbench.builders", "latbench.onnx_export", "latbench.backends",
         "latbench.plots", "latbench.session", "latbench.distributed", "latbench.cli", "nas.")


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "nas":
        return next(i for i, names in enumerate(LAYERS) if "nas" in names)
    name = parts[1] if len(parts) > 1 else "<root>"
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(imported module, line, inside a function) for every import of latbench or nas."""
    tree = ast.parse(path.read_text())
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in ("latbench", "nas") and _is_module(name):
                yield name, node.lineno, id(node) in inside


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def sources() -> list[Path]:
    return sorted(list((REPO / "latbench").rglob("*.py")) + list((REPO / "nas").rglob("*.py")))


def test_every_import_points_down():
    wrong = []
    for path in sources():
        here = module_name(path)
        for name, line, _ in imports(path):
            if name in ("latbench", "nas"):
                continue
            if layer_of(name) > layer_of(here):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {here} imports {name}, a higher layer")
    assert not wrong, "\n".join(wrong)


def test_imports_in_functions_only_defer_heavy_packages():
    wrong = []
    for path in sources():
        here = module_name(path)
        for name, line, in_function in imports(path):
            if in_function and not name.startswith(HEAVY) and layer_of(here) < layer_of("latbench.cli"):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {here} imports {name} inside a function")
    assert not wrong, "\n".join(wrong)
