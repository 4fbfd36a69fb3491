"""Where latbench finds the data it ships: layer_configs/ (spaces, reference networks, grids).

layer_configs/ sits at the repository root and is installed beside the packages, so the same
lookup serves a source checkout, an editable install and a wheel.
"""

from __future__ import annotations

import json
from importlib import resources as _res
from pathlib import Path

from latbench.errors import LatbenchError


def config_dir() -> Path:
    """The layer_configs/ directory."""
    local = Path(__file__).resolve().parent.parent / "layer_configs"
    if local.is_dir():
        return local
    return Path(str(_res.files("layer_configs")))


def bundled_config(name: str) -> Path | None:
    """Path of a bundled config by name ("gpunet-1" or "gpunet-1.json"), or None."""
    if not name or "/" in name or "\\" in name:
        return None
    for candidate in (name, f"{name}.json"):
        path = config_dir() / candidate
        if path.is_file():
            return path
    return None


def read_json(path: str | Path, what: str, error=None):
    """Parsed JSON of a file; `error` (default LatbenchError) names the file when it is missing,
    unreadable or malformed."""
    error = error or LatbenchError
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{p}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{p}: cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise error(f"{p}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
