"""Where latbench finds the data it ships: layer_configs/ (spaces, reference networks, grids).

layer_configs/ sits at the repository root and is installed beside the packages, so the same
lookup serves a source checkout, an editable install and a wheel.
"""

from __future__ import annotations

from importlib import resources as _res
from pathlib import Path

from latbench import schema
from latbench.errors import LatbenchError


def config_dir() -> Path:
    """The layer_configs/ directory."""
    local = Path(__file__).resolve().parent.parent / "layer_configs"
    if local.is_dir():
        return local
    return Path(str(_res.files("layer_configs")))


def bundled_config(name: str) -> Path | None:
    """Path of a bundled config by name ("gpunet-1" or "gpunet-1.json"), or None."""
    if not name or "/" in name or "\\" in name or len(name) > 200:
        return None
    for candidate in (name, f"{name}.json"):
        path = config_dir() / candidate
        if path.is_file():
            return path
    return None


def read_json(path: str | Path, what: str, error=None):
    """Strict JSON of a file (latbench.schema); `error` (default LatbenchError) names the file
    when it is missing, unreadable, binary, too large, too deep or malformed."""
    return schema.read_json(path, what, error or LatbenchError)
