"""Where trials run: local worker processes, or Ray tasks.

Both offer submit(trial, payload) and poll() -> [(trial, result)], where a result is the dict
`nas.trial.run_trial` returns. A local worker is a long-lived spawned process (torch is imported
once), fed one trial at a time through its own pipe: if it dies mid-trial, only that trial is
lost; it is retried on a fresh worker and the others never notice. Ray retries a task whose
worker or node died (max_retries) and gives each trial a GPU where the cluster has them. Workers
of both kinds die with the driver (nas.lifeline): a killed search leaves no trial running.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait

from nas import lifeline

RETRIES = 2


def _worker_loop(conn, parent_pid: int) -> None:
    lifeline.bind_to_parent(parent_pid)  # a killed driver takes its workers with it
    # Ctrl-C reaches the whole process group: the driver stops its workers itself and says so
    # in one line; a worker must not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from nas.trial import run_trial

    while True:
        try:
            payload = conn.recv()
        except EOFError:
            return
        if payload is None:
            return
        conn.send(run_trial(payload))


@dataclass
class _Worker:
    process: object
    conn: object
    trial: int | None = None
    payload: dict | None = None
    tries: int = 0


class LocalExecutor:
    """`parallel` spawned worker processes on this machine."""

    def __init__(self, parallel: int):
        self.ctx = mp.get_context("spawn")
        self.workers: list[_Worker | None] = [None] * parallel
        self.queue: list[tuple[int, dict, int]] = []  # (trial, payload, tries so far)

    @property
    def capacity(self) -> int:
        return len(self.workers)

    def submit(self, trial: int, payload: dict) -> None:
        self.queue.append((trial, payload, 0))
        self._dispatch()

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_loop, args=(child, os.getpid()), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _dispatch(self) -> None:
        for i, w in enumerate(self.workers):
            if not self.queue:
                return
            if w is not None and w.trial is not None:
                continue
            if w is None or not w.process.is_alive():
                w = self.workers[i] = self._spawn()
            w.trial, w.payload, w.tries = self.queue.pop(0)
            w.conn.send(w.payload)

    def poll(self, timeout: float = 1.0) -> list[tuple[int, dict]]:
        busy = [w for w in self.workers if w is not None and w.trial is not None]
        if not busy:
            return []
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        out = []
        for i, w in enumerate(self.workers):
            if w is None or w.trial is None or not ({w.conn, w.process.sentinel} & ready):
                continue
            try:
                out.append((w.trial, w.conn.recv()))
                w.trial = w.payload = None
            except (EOFError, ConnectionResetError, OSError):  # the worker died mid-trial
                w.process.join(timeout=1)
                self.workers[i] = None
                if w.tries < RETRIES:
                    self.queue.insert(0, (w.trial, w.payload, w.tries + 1))
                else:
                    out.append((w.trial, {"status": "failed", "reason": f"worker died {w.tries + 1} "
                                          f"times (exit code {w.process.exitcode})"}))
        self._dispatch()
        return out

    def shutdown(self) -> None:
        for w in filter(None, self.workers):
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.terminate()


class RayExecutor:
    """Trials as Ray tasks: one GPU each where the cluster has GPUs, retried if a worker dies."""

    def __init__(self, address: str, parallel: int | None = None):
        from latbench.distributed import connect

        self.ray = connect(address)
        from nas.trial import run_trial

        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        self.task = self.ray.remote(max_retries=RETRIES, **resources)(run_trial)
        self._capacity = parallel or (gpus or cpus)
        self.running: dict = {}

    @property
    def capacity(self) -> int:
        return self._capacity

    def submit(self, trial: int, payload: dict) -> None:
        self.running[self.task.remote(payload)] = trial

    def poll(self, timeout: float = 1.0) -> list[tuple[int, dict]]:
        if not self.running:
            time.sleep(min(timeout, 0.1))
            return []
        done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=timeout)
        out = []
        for ref in done:
            trial = self.running.pop(ref)
            try:
                out.append((trial, self.ray.get(ref)))
            except self.ray.exceptions.RayError as err:
                out.append((trial, {"status": "failed", "reason": f"Ray: {type(err).__name__}"}))
        return out

    def shutdown(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref, force=True)
