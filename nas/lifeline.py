"""Workers die with the driver that started them.

A search killed with SIGKILL runs no cleanup: its workers would train on to the end of their
trials (on a GPU, holding the device) and compete with the resumed search. Two guards, both
cheap:

* a local worker is the driver's child: on Linux the kernel sends it SIGKILL when the driver dies
  (prctl PR_SET_PDEATHSIG), and a watchdog thread also checks that its parent is still the driver
  (other systems, and the moment before prctl took effect);
* a Ray worker is no child of the driver: the trial's payload names the driver (host, pid, start
  time), and on the driver's host a watchdog thread ends the worker once that process is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import time

from latbench.files import process_alive

PR_SET_PDEATHSIG = 1  # linux/prctl.h
#: Seconds between two looks at the driver.
WATCH_INTERVAL_S = 1.0
_watched: set = set()
_lock = threading.Lock()


def driver() -> dict:
    """This process as a driver: where it runs, its pid and its start time (pids are reused)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def bind_to_parent(parent_pid: int) -> None:
    """In a worker started by `parent_pid`: die when it dies (see module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the watchdog alone guards
            pass
    _start(("parent", parent_pid), lambda: os.getppid() == parent_pid)


def watch_driver(info: dict | None) -> None:
    """In a worker: die when the driver described by `info` (from `driver()`) is gone, if it runs
    on this host (elsewhere its pid means nothing here; Ray ends a dead job's tasks in time)."""
    if not info or info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return
    pid, start = info["pid"], info.get("start")
    _start(("driver", pid, start), lambda: _alive(pid, start))


def _start(key: tuple, alive) -> None:
    with _lock:
        if key in _watched:
            return
        _watched.add(key)
    if not alive():
        _die()
    threading.Thread(target=_watch, args=(alive,), name="latbench-lifeline", daemon=True).start()


def _watch(alive) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if not alive():
            _die()


def _die() -> None:
    """End this worker at once: no cleanup is due (the driver records what finished)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int, start) -> bool:
    """Whether the process `pid` that started at `start` (pids are reused) still runs."""
    return process_alive(pid) and (start is None or _start_time(pid) in (None, start))


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None
