"""One validation layer for every file latbench reads: strict JSON and typed fields.

Reading (`read_text`, `loads`, `read_json`): a path must name a regular file (not a folder, a
device or a FIFO) of at most `limit` bytes of UTF-8 text; JSON is strict: NaN and Infinity are
not JSON, a number that overflows a float (1e999) or has thousands of digits is refused, and so is
nesting deeper than MAX_DEPTH. Every problem is one line naming the file (and, for a field, its
path: "file: stages[1].filters").

Fields (`fields`, `check_type`, `number`): a JSON object is checked against required and optional
typed fields; numbers are checked finite and within the range that the format or the space allows,
and the message gives that range.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

from latbench.errors import LatbenchError

#: Default size limit of a JSON document (architectures, spaces, grids, reports): far above any
#: real one (the GPUNet space is 3 KB), far below what would exhaust memory.
MAX_JSON_BYTES = 64 << 20
#: Nesting deeper than this is no latbench file (the deepest, a validation report, nests 4).
MAX_DEPTH = 32
#: Digits of an integer in a JSON file (int64 has 19).
MAX_DIGITS = 20

_TYPES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    dict: "a JSON object",
    list: "a JSON list",
    (bool, int): "true, false or an SE variant number",
    object: "a value",
}


# -- paths -------------------------------------------------------------------------------------------
def check_input(path: str | Path, what: str, error=LatbenchError, hint: str = "") -> Path:
    """`path` as an input file: it exists and is a regular file; `error` naming the problem."""
    p = Path(path)
    if str(path) == "":
        raise error(f"{what} path is empty; give a file path")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{p}: no such {what} file{hint}") from None
    except OSError as err:
        raise error(f"{p}: cannot read: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{p}: is a folder, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p}: is not a regular file (a device or a pipe?); give a {what} file")
    return p


def read_bytes(path: str | Path, what: str, error=LatbenchError, limit: int = MAX_JSON_BYTES,
               hint: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes."""
    p = check_input(path, what, error, hint)
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise error(f"{p}: cannot read: {err.strerror or err}") from None
    if len(data) > limit:
        raise error(f"{p}: larger than {limit >> 20} MiB: not a {what} file")
    return data


def decode(data: bytes, source: str, what: str, error=LatbenchError) -> str:
    """UTF-8 text of `data`, or one line saying the file is binary."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{source}: not UTF-8 text at byte {err.start} (a binary file?): not a {what} file") from None


def read_text(path: str | Path, what: str, error=LatbenchError, limit: int = MAX_JSON_BYTES) -> str:
    return decode(read_bytes(path, what, error, limit), str(path), what, error)


# -- strict JSON -------------------------------------------------------------------------------------
class _Refused(ValueError):
    pass


def _constant(name: str):
    raise _Refused(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:30]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"the integer {text[:30]}... has {len(text)} digits")
    return int(text)


def loads(text: str | bytes, source: str, what: str = "JSON", error=LatbenchError):
    """Parse strict JSON (no NaN/Infinity, no overflowing numbers, nesting <= MAX_DEPTH)."""
    if isinstance(text, bytes):
        text = decode(text, source, what, error)
    try:
        obj = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Refused as err:
        raise error(f"{source}: {err}: not a valid {what} file") from None
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply: not a {what} file") from None
    except json.JSONDecodeError as err:
        if not text.strip():
            raise error(f"{source}: empty: not a {what} file") from None
        raise error(f"{source}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if depth(obj) > MAX_DEPTH:
        raise error(f"{source}: JSON nested more than {MAX_DEPTH} levels deep: not a {what} file")
    return obj


def depth(obj) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    best, stack = 0, [(obj, 0)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            best = max(best, d + 1)
            if d + 1 > MAX_DEPTH:
                return d + 1
            stack.extend((v, d + 1) for v in value if isinstance(v, (dict, list)))
    return best


def read_json(path: str | Path, what: str, error=LatbenchError, limit: int = MAX_JSON_BYTES):
    """Strict JSON of a file (see module docstring)."""
    return loads(read_bytes(path, what, error, limit), str(path), what, error)


def read_object(path: str | Path, what: str, error=LatbenchError, limit: int = MAX_JSON_BYTES) -> dict:
    """A file that holds one JSON object (a report, a session record), read as `read_json` reads."""
    obj = read_json(path, what, error, limit)
    if not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object ({what}), found {type(obj).__name__}")
    return obj


# -- typed fields ------------------------------------------------------------------------------------
def _show(value) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_type(value, kind, where: str, error=LatbenchError):
    """`value` if it has JSON type `kind` (int, float, bool, str, dict, list, or (bool, int));
    a float must be finite."""
    ok = (
        (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
        or (kind is bool and isinstance(value, bool))
        or (kind in (str, dict, list) and isinstance(value, kind))
        or (kind == (bool, int) and isinstance(value, int))
        or kind is object
    )
    if not ok:
        raise error(f"{where}: must be {_TYPES[kind]}, got {_show(value)}")
    return value


def child(where: str, name) -> str:
    """Path of a field: "file: head" at the top level, "file: stages[1].filters" below it."""
    if isinstance(name, int):
        return f"{where}[{name}]"
    return f"{where}.{name}" if ": " in where else f"{where}: {name}"


def fields(obj, where: str, required: dict, optional: dict | None = None, *, error=LatbenchError,
           extra: bool = False) -> dict:
    """Validate a JSON object against required {name: type} and optional {name: (type, default)};
    a default of None also admits null. `extra` keeps unknown fields (records that grow new
    fields, such as table rows) instead of refusing them."""
    optional = optional or {}
    if not isinstance(obj, dict):
        raise error(f"{where}: must be a JSON object, got {_show(obj)}")
    if not extra:
        unknown = sorted(set(obj) - set(required) - set(optional))
        if unknown:
            allowed = ", ".join(list(required) + list(optional))
            raise error(f"{where}: unknown field '{unknown[0]}' (allowed: {allowed})")
    out = dict(obj) if extra else {}
    for name, kind in required.items():
        if name not in obj:
            raise error(f"{where}: missing field '{name}'")
        out[name] = check_type(obj[name], kind, child(where, name), error)
    for name, (kind, default) in optional.items():
        value = obj.get(name, default)
        if name in obj and not (value is None and default is None):
            check_type(value, kind, child(where, name), error)
        out[name] = value
    return out


def number(value, where: str, lo=None, hi=None, *, integer: bool = False, lo_open: bool = False,
           error=LatbenchError):
    """A finite number (an integer if `integer`) in [lo, hi] ((lo, hi] if `lo_open`)."""
    check_type(value, int if integer else float, where, error)
    below = lo is not None and (value <= lo if lo_open else value < lo)
    if below or (hi is not None and value > hi):
        left = "(" if lo_open else "["
        span = f"{left}{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else \
            (f"> {_fmt(lo)}" if lo_open else f">= {_fmt(lo)}") if lo is not None else f"<= {_fmt(hi)}"
        raise error(f"{where}: {_show(value)} is outside the allowed range {span}")
    return value


def choice(value, where: str, allowed, error=LatbenchError):
    """`value` if it is one of `allowed`; the message lists them."""
    if not isinstance(value, (str, int, float, bool, type(None))) or value not in allowed:
        raise error(f"{where}: {_show(value)} is not one of {', '.join(map(str, allowed))}")
    return value


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else str(x)
