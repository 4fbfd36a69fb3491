"""Append-only JSON-lines logs that survive SIGKILL, concurrent writers and a full disk.

Latency tables and search results are both such logs. Each record is one line written with a
single os.write() on a file opened O_APPEND, while holding an exclusive lock (filelock, beside the
file as FILE.lock): a killed writer leaves either the whole line or nothing, and two writers never
interleave.

Reading: every line is strict JSON (latbench.schema: no NaN, no overflowing numbers, bounded
nesting) holding an object. A final line without its newline is a record when it is complete JSON
(an editor or a copy may drop the last newline: that line is data); only a final line that does not
parse (a write cut by power loss) is not a record yet. Any other malformed line is refused, so a
damaged file is reported, never silently half-read.

Writing: before appending, a complete final line gets its newline back; a cut one is removed. An
append that cannot be written (disk full, I/O error) is undone to the previous end of the file and
ends the run with one LatbenchError line: the log stays readable and the next run resumes it.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from latbench import schema
from latbench.errors import LatbenchError


class LogCorrupt(LatbenchError):
    pass


class JsonLog:
    """An append-only log of JSON objects at `path`."""

    def __init__(self, path: str | Path, what: str = "log"):
        self.path = Path(path)
        self.what = what
        self.lock = FileLock(str(self.path) + ".lock")
        self._offset = 0  # bytes already consumed by `read_new`
        self._lines = 0  # records already consumed, for messages

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def read_all(self) -> list[dict]:
        self._offset = self._lines = 0
        return self.read_new()

    def read_new(self) -> list[dict]:
        """Records appended since the last read (all of them on the first call)."""
        return [rec for _, rec in self.read_numbered()]

    def read_numbered(self, from_start: bool = False) -> list[tuple[int, dict]]:
        """(line number, record) of the records appended since the last read (or all of them), so
        that a reader that finds a bad record can name its line."""
        if from_start:
            self._offset = self._lines = 0
        if not os.path.lexists(self.path):
            return []
        schema.check_input(self.path, self.what, LogCorrupt)
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError as err:
            raise LatbenchError(f"{self.path}: cannot read: {err.strerror}") from None
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")[:-1]
        tail = data[end:]
        if tail.strip() and _complete(tail):  # a last line without its newline is data
            lines.append(tail)
            end = len(data)
        records = []
        for line in lines:
            self._lines += 1
            rec = self._parse(line)
            if rec is not None:
                records.append((self._lines, rec))
        self._offset += end
        return records

    def _parse(self, line: bytes) -> dict | None:
        if not line.strip():
            return None
        where = f"{self.path}: line {self._lines}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise LogCorrupt(f"{where} is not UTF-8 text: the file is damaged or not a {self.what}") from None
        obj = schema.loads(text, where, self.what, LogCorrupt)
        if not isinstance(obj, dict):
            raise LogCorrupt(f"{where} is not a JSON object: the file is damaged or not a {self.what}")
        return obj

    @contextmanager
    def locked(self):
        """Hold the log's lock (FILE.lock); a lock that cannot be taken is one LatbenchError line."""
        try:
            self.lock.acquire()
        except OSError as err:
            raise LatbenchError(f"{self.path}: cannot lock for writing ({err.strerror or err}); "
                                "check the folder's permissions") from None
        try:
            yield
        finally:
            self.lock.release()

    def append(self, records: list[dict], *, locked: bool = False) -> None:
        """Append records; each is one line written by one system call. A failed write is undone
        and becomes one LatbenchError line."""
        if not records:
            return
        if not locked:
            with self.locked():
                return self.append(records, locked=True)
        lines = [encode(rec) for rec in records]
        try:
            self._repair_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise LatbenchError(f"{self.path}: cannot write: {err.strerror or err}") from None
        try:
            for line in lines:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, line)
                except OSError as err:
                    _undo(fd, size)
                    raise LatbenchError(
                        f"{self.path}: cannot append ({err.strerror or err}); the {self.what} is intact up to "
                        "its last complete record: free the space or fix the disk and re-run to resume") from None
        finally:
            os.close(fd)

    def _repair_tail(self) -> None:
        """Give a complete last line its newline back; cut a last line that a write left
        unfinished (power loss mid-write), so that the next record starts clean; refuse a file
        with no complete line at all (LogCorrupt)."""
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
            end = data.rfind(b"\n") + 1
            if _complete(data[end:]):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            elif end == 0:
                # Not one complete record: some other file, not a log cut short. Cutting it
                # would destroy it; refuse instead.
                raise LogCorrupt(f"{self.path}: holds no complete record (not a {self.what}, or one cut in its "
                                 "first write); give another path, or remove the file to start afresh")
            else:
                f.truncate(end)
            f.flush()
            os.fsync(f.fileno())


def encode(record: dict) -> bytes:
    """One record as its line: compact strict JSON (no NaN) and the newline."""
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _complete(line: bytes) -> bool:
    """Whether a line without its newline is a whole JSON object (not a write cut short)."""
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (a short write is continued; an error raises OSError)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"short write ({written} bytes)")
        view = view[written:]


def _undo(fd: int, size: int) -> None:
    """Cut the file back to `size` bytes after a failed append (best effort: if even that fails,
    the cut line has no newline and readers and the next append treat it as unfinished)."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass
