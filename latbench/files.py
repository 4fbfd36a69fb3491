"""Every file latbench writes whole goes through here: checked before any work, written to a
temporary file beside it and renamed into place, so a crash, a kill or a full disk leaves either
the old file or the new one, never a truncated one. (Append-only logs are latbench.jsonlog.)
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from latbench.errors import LatbenchError


def check_output(path: str | Path, what: str = "file", append: bool = False) -> Path:
    """`path` as an output file: not a folder, a device or a pipe; its folder creatable and
    writable (a whole file is written beside it and renamed); with `append` (a log that grows in
    place) the file itself writable where it exists. A LatbenchError naming the problem and the
    fix otherwise. Called before measuring, so that a bad path costs nothing."""
    if str(path) in ("", "."):
        raise LatbenchError(f"{what} path is empty; give a file path")
    path = Path(path)
    kind = _kind(path)
    if kind == "dir":
        raise LatbenchError(f"{path}: is a folder; give a {what} path")
    if kind == "other":
        # A rename would replace a device node or a pipe with a regular file: refuse instead.
        raise LatbenchError(f"{path}: is not a regular file (a device or a pipe?); give a {what} path")
    _make_folder(path.parent if str(path.parent) else Path("."), path)
    probes = [path] if append and kind == "file" else [path.parent] + ([path] if kind == "file" else [])
    if not all(os.access(p, os.W_OK) for p in probes):
        raise LatbenchError(f"{path}: not writable (check the permissions or choose another path)")
    return path


def check_distinct(paths: dict) -> None:
    """Refuse two options that name one file ({"--csv": a, "--table": b}): writing one would
    destroy the other (a report written over its own table). An option's value may be a list of
    the files it stands for (a table and its networks log: latbench.table.table_files)."""
    seen: dict[str, str] = {}
    for option, value in paths.items():
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is None:
                continue
            real = os.path.realpath(path)
            if real in seen and seen[real] != option:
                raise LatbenchError(f"{seen[real]} and {option} both name {path}; give two different paths")
            seen[real] = option


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """`path` as an output folder: created if missing, not a file, writable."""
    if str(path) == "":
        raise LatbenchError(f"{what} path is empty; give a folder")
    path = Path(path)
    if _kind(path) not in ("dir", "missing"):
        raise LatbenchError(f"{path}: is a file; give a folder as the {what}")
    _make_folder(path, path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise LatbenchError(f"{path}: not writable (check the permissions or choose another folder)")
    return path


def _kind(path: Path) -> str:
    """"missing", "file" (regular), "dir" or "other" (device, pipe, socket)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        raise LatbenchError(f"{path}: {err.strerror or err}") from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _make_folder(folder: Path, path: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise LatbenchError(f"{path}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LatbenchError(f"{path}: cannot create folder {folder}: {err.strerror or err}") from None


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


#: The process's umask, read once (reading it is not thread-safe).
_UMASK = _umask()


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on any
    failure it is removed and `path` is left as it was. A full disk becomes a LatbenchError."""
    path = check_output(path)
    _remove_stale(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        # mkstemp makes 0600 files; the output gets the mode a plain open() would give it
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise LatbenchError(f"{path}: cannot write: {err.strerror or err}; nothing was changed") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(path: Path) -> None:
    """Remove the temporary files of earlier writes of `path` whose process is gone (killed
    between writing and renaming: SIGKILL leaves them, nothing else does)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """Copy `src` to `dst` atomically (the copy appears whole or not at all)."""
    with atomic_path(dst) as tmp:
        try:
            shutil.copyfile(src, tmp)
        except OSError as err:
            raise LatbenchError(f"{src}: cannot copy to {dst}: {err.strerror or err}") from None
    return Path(dst)


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
