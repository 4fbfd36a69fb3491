"""Every file latbench writes whole goes through here: checked before any work, written to a
temporary file beside it and renamed into place, so a crash, a kill or a full disk leaves either
the old file or the new one, never a truncated one. (Append-only logs are latbench.jsonlog.)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from latbench.errors import LatbenchError


def check_output(path: str | Path, what: str = "file") -> Path:
    """`path` as an output file: not a folder, its folder creatable and writable; a LatbenchError
    naming the problem and the fix otherwise. Called before measuring, so that a bad path costs
    nothing."""
    path = Path(path)
    if str(path) in ("", "."):
        raise LatbenchError(f"{what} path is empty; give a file path")
    if path.is_dir():
        raise LatbenchError(f"{path}: is a folder; give a {what} path")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise LatbenchError(f"{path}: {parent} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LatbenchError(f"{path}: cannot create folder {parent}: {err.strerror}") from None
    probe = path if path.exists() else parent
    if not os.access(probe, os.W_OK):
        raise LatbenchError(f"{path}: not writable (check the permissions or choose another path)")
    return path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on any
    failure it is removed and `path` is left as it was. A full disk becomes a LatbenchError."""
    path = check_output(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise LatbenchError(f"{path}: cannot write: {err.strerror or err}; nothing was changed") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see module docstring)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def clean_json(obj):
    """`obj` with every non-finite float turned into None (NaN and Infinity are not JSON; a
    statistic that is undefined, such as Kendall's tau of one network, is null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """Strict JSON written atomically; undefined statistics (NaN) become null."""
    return write_text(path, json.dumps(clean_json(obj), indent=indent, allow_nan=False, default=str) + "\n")
