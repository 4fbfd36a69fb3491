"""Workers die with their driver (nas.lifeline): a SIGKILLed search leaves no worker training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; prctl is Linux's")

#: A driver that starts one worker, prints its pid and waits. The worker binds itself to the
#: driver as `HOW` says (prctl and the watchdog, the watchdog alone, or nothing) and sleeps.
DRIVER = """
import multiprocessing as mp, os, sys, time
from nas import lifeline

def worker(parent, how):
    if how == "bind":
        lifeline.bind_to_parent(parent)
    elif how == "watchdog":
        lifeline._start(("parent", parent), lambda: os.getppid() == parent)
    time.sleep(60)

if __name__ == "__main__":
    p = mp.get_context("spawn").Process(target=worker, args=(os.getpid(), sys.argv[1]))
    p.start()
    print(p.pid, flush=True)
    time.sleep(60)
"""

#: A process that is no child of the driver (a Ray worker): it watches the driver named on argv.
WATCHER = """
import json, sys, time
from nas import lifeline
lifeline.watch_driver(json.loads(sys.argv[1]))
print("watching", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def start_driver(tmp_path, how: str):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    p = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, text=True,
                         cwd=os.getcwd(), start_new_session=True)
    return p, int(p.stdout.readline())


@pytest.mark.parametrize("how", ["bind", "watchdog"])
def test_a_worker_dies_with_its_killed_driver(tmp_path, how):
    p, worker = start_driver(tmp_path, how)
    try:
        time.sleep(0.5)
        assert alive(worker)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert gone_within(worker, 3.0), "the worker outlived its driver"
    finally:
        os.killpg(p.pid, signal.SIGKILL)


def test_without_a_lifeline_the_worker_would_be_orphaned(tmp_path):
    """The control: the same worker, unbound, survives its driver (so the tests above test
    something)."""
    p, worker = start_driver(tmp_path, "none")
    try:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert not gone_within(worker, 1.5)
    finally:
        os.killpg(p.pid, signal.SIGKILL)


def test_a_worker_that_is_no_child_watches_the_driver_on_its_host(tmp_path):
    """The Ray case: the payload names the driver (host, pid, start time); a worker on the same
    host ends when that process is gone."""
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = None
    try:
        from nas import lifeline

        info = lifeline.driver() | {"pid": driver.pid, "start": lifeline._start_time(driver.pid)}
        watcher = subprocess.Popen([sys.executable, "-c", WATCHER, json.dumps(info)], stdout=subprocess.PIPE,
                                   text=True)
        assert watcher.stdout.readline().strip() == "watching"
        driver.kill()
        driver.wait()
        assert watcher.wait(timeout=5) == -signal.SIGKILL
    finally:
        driver.kill()
        if watcher is not None:
            watcher.kill()


def test_a_driver_on_another_host_or_a_reused_pid_is_no_reason_to_die():
    from nas import lifeline

    assert lifeline._alive(os.getpid(), lifeline._start_time(os.getpid()))
    assert not lifeline._alive(os.getpid(), -1)  # same pid, another process (pids are reused)
    lifeline.watch_driver({"host": "elsewhere.invalid", "pid": 1, "start": 0})  # returns, watches nothing
    lifeline.watch_driver(None)
