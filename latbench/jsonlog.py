"""Append-only JSON-lines logs that survive SIGKILL and concurrent writers.

Latency tables and search results are both such logs. Each record is one line written with a
single os.write() on a file opened O_APPEND, while holding an exclusive lock (filelock, beside the
file as FILE.lock): a killed writer leaves either the whole line or nothing, and two writers never
interleave. Readers skip a final line without its newline (a write cut by power loss) and refuse
any other malformed line, so a damaged file is reported, never silently half-read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

from latbench.errors import LatbenchError


class LogCorrupt(LatbenchError):
    pass


class JsonLog:
    """An append-only log of JSON objects at `path`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock")
        self._offset = 0  # bytes already consumed by `read_new`

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def read_all(self) -> list[dict]:
        self._offset = 0
        return self.read_new()

    def read_new(self) -> list[dict]:
        """Records appended since the last read (all of them on the first call)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise LatbenchError(f"{self.path}: cannot read: {err.strerror}") from None
        end = data.rfind(b"\n") + 1  # a trailing partial line is not a record (yet)
        records = []
        for i, line in enumerate(data[:end].splitlines()):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LogCorrupt(f"{self.path}: record {i + 1} after byte {self._offset} is not "
                                 "valid JSON: the file is damaged") from None
            if not isinstance(obj, dict):
                raise LogCorrupt(f"{self.path}: record {i + 1} is not a JSON object")
            records.append(obj)
        self._offset += end
        return records

    def append(self, records: list[dict], *, locked: bool = False) -> None:
        """Append records; each is one line written by one system call."""
        if not records:
            return
        if not locked:
            with self.lock:
                return self.append(records, locked=True)
        self._repair_tail()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for rec in records:
                line = (json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n").encode()
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"short write to {self.path}")
        finally:
            os.close(fd)

    def _repair_tail(self) -> None:
        """Cut a trailing partial line (power loss mid-write) so the next record starts clean."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
