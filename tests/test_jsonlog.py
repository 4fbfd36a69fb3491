"""The append-only log under tables and search results: strict lines, a complete last line is
data, a failed append is undone."""

from __future__ import annotations

import errno
import json
import os

import pytest

from latbench.errors import LatbenchError
from latbench.jsonlog import JsonLog, LogCorrupt


def test_a_complete_last_line_without_newline_is_data_and_gets_its_newline_back(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}')  # an editor dropped the final newline
    log = JsonLog(path)
    assert log.read_all() == [{"a": 1}, {"b": 2}]
    log.append([{"c": 3}])
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n{"c":3}\n'  # repaired by adding, not cutting
    assert JsonLog(path).read_all() == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_a_reader_that_saw_the_line_without_newline_reads_on_correctly(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}')
    reader = JsonLog(path)
    assert reader.read_new() == [{"a": 1}]
    JsonLog(path).append([{"b": 2}])
    assert reader.read_new() == [{"b": 2}]


def test_a_cut_last_line_is_not_a_record_and_is_removed_by_the_next_append(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": ')  # a write cut short by power loss
    log = JsonLog(path)
    assert log.read_all() == [{"a": 1}]
    log.append([{"c": 3}])
    assert JsonLog(path).read_all() == [{"a": 1}, {"c": 3}]


@pytest.mark.parametrize("line", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e999}', b"[1]", b"\xff\xfe",
                                  b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"1" * 5000 + b"}"])
def test_lines_that_are_not_strict_json_objects_are_refused_in_one_line(tmp_path, line):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n' + line + b'\n{"b": 2}\n')
    with pytest.raises(LogCorrupt, match="line 2") as err:
        JsonLog(path).read_all()
    assert "\n" not in str(err.value)


def failing_write(path, after: int, short: bool = False):
    """os.write that fails with ENOSPC on `path` after `after` successful writes (the first
    failing call writes half its bytes first when `short`)."""
    real = os.write
    calls = {"n": 0}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target != str(path):
            return real(fd, data)
        calls["n"] += 1
        if calls["n"] <= after:
            return real(fd, data)
        if short and calls["n"] == after + 1:
            return real(fd, bytes(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


@pytest.mark.parametrize("short", [False, True])
def test_a_full_disk_undoes_the_append_and_leaves_the_log_readable(tmp_path, monkeypatch, short):
    path = tmp_path / "log.jsonl"
    log = JsonLog(path)
    log.append([{"i": 0}])
    monkeypatch.setattr(os, "write", failing_write(path.resolve(), after=1, short=short))
    with pytest.raises(LatbenchError, match="No space left on device.*intact") as err:
        log.append([{"i": 1}, {"i": 2}])
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert path.read_bytes().endswith(b"\n")  # no torn line kept
    assert JsonLog(path).read_all() == [{"i": 0}, {"i": 1}]  # the record before the failure is whole
    log.append([{"i": 2}])  # and the log goes on
    assert [r["i"] for r in JsonLog(path).read_all()] == [0, 1, 2]


def test_every_line_is_one_record(tmp_path):
    path = tmp_path / "log.jsonl"
    JsonLog(path).append([{"text": "two\nlines"}, {"n": 1}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"text": "two\nlines"}, {"n": 1}]


@pytest.mark.parametrize("text", [b"hello world", b'{"type": "row", "key": "x", "med', b"[1, 2, 3]"])
def test_a_file_without_one_complete_record_is_never_cut(tmp_path, text):
    """Appending to some other file (a notes.txt given as --out) would drop its "cut" text."""
    path = tmp_path / "notes.txt"
    path.write_bytes(text)
    with pytest.raises(LogCorrupt, match="holds no complete record"):
        JsonLog(path).append([{"c": 3}])
    assert path.read_bytes() == text
