"""The GPU session runner: a lent GPU's minutes turned into shipped figures, whatever happens.

    PYTHONPATH=. python3 -m latbench.session --out $OUT            # on a lent GPU, no install
    python -m latbench.session --rehearse --out /tmp/rehearsal      # the same steps on this CPU

It needs no install step and no package beyond what a lent GPU machine has (torch, numpy, scipy,
onnx, nvidia-ml-py, rich, filelock, pytest; no onnx-graphsurgeon, ray, optuna, tensorrt, click).
It resumes the table committed in tables/ for this GPU, runs the steps of `latbench.session.plan`
in order of value, each in its own process with its own deadline inside the total budget, and
after every step copies what exists into OUT:

    session.log              everything the steps printed, as they printed it
    session.json             plan, machine, each step's status, time and result, the costs
    <gpu>-torch-fp16-b1.jsonl            the grown table (with its stored calibration)
    <gpu>-torch-fp16-b1.networks.jsonl   whole networks measured end to end
    validation.json          reports: held-out Sobol networks, reference networks, fresh check
    harness_bench.jsonl      harness benchmark, one row per block

That is at most 6 files, within the device tool's limits (8 files, 16 MiB each, no folders); a
file over 15 MiB is gzipped.

Evidence gathered once per GPU (the protocol comparison, the harness benchmark, the cuDNN
comparison: steps in ONCE) is not measured again once shipped in bench/results/<gpu>/ (where
`latbench session ship` merges each session's reports into the committed ones): a later session
spends that time on validation keys. Nothing depends on an exit handler: a hard kill keeps everything
archived up to the last finished step, and the table itself loses at most the row in hand.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from latbench.files import write_json
from latbench.session.plan import GRACE_S, Plan, allot
from latbench.table import device_slug

#: Files archived from the work folder after each step (the table and its networks log are
#: added once a step has named the table).
REPORTS = ("validation.json", "harness_bench.jsonl")
MAX_FILE_BYTES = 15 << 20
#: Steps whose evidence, once shipped for a GPU, later sessions do not measure again.
ONCE = ("protocol", "harness", "cudnn-heuristics", "cudnn-autotuned")


def write_part(work: Path, part: str, report) -> None:
    """Put one report into work/validation.json (a JSON object of reports by part)."""
    path = work / "validation.json"
    reports = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, reports | {part: report})


class Archive:
    """OUT: the session log (appended line by line) and atomic copies of the work folder's
    outputs."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("*.partial"):
            stale.unlink()
        self._log = open(out / "session.log", "a", buffering=1)

    def close(self) -> None:
        self._log.close()

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self._log.write(line + "\n")

    def echo(self, line: str) -> None:
        """A line of a step's output: to the terminal and the log as it comes."""
        sys.stdout.write(line)
        sys.stdout.flush()
        self._log.write(line)

    def put(self, src: Path) -> None:
        """Copy `src` into OUT atomically (gzipped when larger than MAX_FILE_BYTES)."""
        if not src.is_file():
            return
        big = src.stat().st_size > MAX_FILE_BYTES
        dest = self.out / (src.name + (".gz" if big else ""))
        tmp = dest.with_name(dest.name + ".partial")
        if big:
            with open(src, "rb") as f, gzip.open(tmp, "wb") as g:
                shutil.copyfileobj(f, g)
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)

    def put_json(self, name: str, obj: dict) -> None:
        write_json(self.out / name, obj)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def machine_facts() -> dict:
    """Host facts that need no torch: Python, OS, and nvidia-smi's view of the GPU."""
    facts = {"python": platform.python_version(), "host": platform.node(),
             "os": f"{platform.system()} {platform.release()}", "executable": sys.executable}
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit,temperature.gpu"
        try:
            out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=15).stdout.strip()
            facts["nvidia_smi"] = dict(zip(query.split(","), (v.strip() for v in out.split(","))))
        except (OSError, subprocess.TimeoutExpired) as err:
            facts["nvidia_smi"] = f"failed: {err}"
    return facts


class Session:
    """Runs a plan within `budget_s` seconds; see the module docstring."""

    def __init__(self, plan: Plan, out: Path, work: Path, budget_s: float, tables: Path | None = None,
                 results: Path | None = None):
        self.plan, self.work, self.budget_s = plan, Path(work), float(budget_s)
        self.archive = Archive(Path(out))
        self.repo = repo_root()
        self.tables = Path(tables) if tables else self.repo / "tables"
        self.results = Path(results) if results else self.repo / "bench" / "results"
        self.work.mkdir(parents=True, exist_ok=True)
        # A work folder used before (a second run on a machine still warm) keeps its table, which
        # is resumed, but not the reports and step results of that run: they are this run's.
        for stale in [self.work / n for n in REPORTS] + list(self.work.glob("steps/*.json")):
            stale.unlink(missing_ok=True)
        self.costs: dict = {}
        self.state = {"plan": plan.as_dict(), "budget_s": self.budget_s, "work": str(self.work),
                      "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": [],
                      "machine": machine_facts(), "costs": self.costs, "units": "seconds"}

    def run(self) -> dict:
        end = time.monotonic() + self.budget_s  # monotonic: a clock set at boot moves no deadline
        self.archive.say(f"latbench session ({self.plan.mode}): budget {self.budget_s:.0f} s, "
                         f"steps {', '.join(self.plan.steps)}")
        for i, rule in enumerate(self.plan.rules):
            later = [r for r in self.plan.rules[i + 1:] if not self._not_needed(r.name)]
            seconds = allot(rule, end - time.monotonic(), later)
            why = self._skip_reason(rule.name, seconds)
            if why:
                self.archive.say(f"== {rule.name}: skipped ({why})")
                self.state["steps"].append({"step": rule.name, "status": "skipped", "reason": why})
            else:
                self._run_step(rule.name, seconds)
            self._archive()
        self.state["cudnn"] = cudnn_comparison(self._result("cudnn-heuristics"), self._result("cudnn-autotuned"))
        if self.state["cudnn"]:
            write_part(self.work, "cudnn", self.state["cudnn"])
        self.state["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._archive()
        self.archive.say(self.summary())
        self.archive.close()
        return self.state

    def _skip_reason(self, name: str, seconds: float) -> str:
        return self._not_needed(name) or ("not enough time left" if seconds <= 0 else "")

    def _not_needed(self, name: str) -> str:
        """Why step `name` has nothing to do in this session ("" when it has): earlier steps
        keep no time for such a step."""
        if name == "fresh" and not self._result("smoke").get("calibrated_at_start"):
            return "no calibration stored by an earlier session to check"
        return self._shipped(name)

    def _shipped(self, name: str) -> str:
        """Why step `name` need not run ("" when it must): its evidence for this session's GPU is
        already in bench/results/<gpu>/ (known once a step has named the table)."""
        slug = device_slug(self.state.get("table") or "")
        if name not in ONCE or slug is None:
            return ""
        folder = self.results / slug
        try:
            if name == "harness":
                lines = (folder / "harness_bench.jsonl").read_text().splitlines()
                done = any(json.loads(line).get("type") == "row" for line in lines if line.strip())
            else:
                parts = json.loads((folder / "validation.json").read_text())
                if name == "protocol":
                    main, nets = parts["protocol"]["main_protocol"], parts["protocol"]["networks"]
                    done = len(nets) >= len(self.plan.reference) and all(
                        v for n in nets for p, v in n["sum_us"].items() if p != main)
                else:
                    done = bool(parts.get("cudnn"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return ""  # nothing shipped, or nothing readable: measure it
        return f"its evidence is already shipped in {folder}" if done else ""

    def _result(self, name: str) -> dict:
        return next((s.get("result") or {} for s in self.state["steps"] if s["step"] == name), {})

    def _run_step(self, name: str, seconds: float) -> None:
        self.archive.say(f"== {name}: up to {seconds:.0f} s")
        (self.work / "context.json").write_text(json.dumps({
            "plan": self.plan.as_dict(), "repo": str(self.repo), "tables": str(self.tables),
            "costs": self.costs}, default=str))
        result_file = self.work / "steps" / f"{name}.json"
        result_file.unlink(missing_ok=True)
        t0 = time.monotonic()
        status = self._child([sys.executable, "-m", "latbench.session", "step", name, "--work",
                              str(self.work), "--seconds", f"{seconds:.3f}"], seconds + GRACE_S)
        # A step killed at its limit leaves the result it had noted so far (without a status).
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        status = result.get("status", status)
        self.state["steps"].append({"step": name, "status": status, "allotted_s": round(seconds, 1),
                                    "seconds": round(time.monotonic() - t0, 1), "result": result})
        self._learn(result)
        self.archive.say(f"== {name}: {status} in {time.monotonic() - t0:.0f} s")

    def _child(self, argv: list[str], timeout_s: float) -> str:
        """Run a step's process, streaming its output; kill its process group at `timeout_s`."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.repo), env.get("PYTHONPATH")]))
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                              start_new_session=True, bufsize=1) as proc:
            killer = _Killer(proc, time.monotonic() + timeout_s)
            killer.start()
            for line in proc.stdout:
                self.archive.echo(line)
            proc.wait()
            killer.cancel()
        if killer.fired:
            return "killed at its time limit"
        return "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"

    def _learn(self, result: dict) -> None:
        """Keep the latest measured cost per key and per network for the steps that follow."""
        for key in ("s_per_key", "s_per_network"):
            value = result.get(key) or (result.get("sobol") or {}).get(key)
            if value:
                self.costs[key] = float(value)

    def _archive(self) -> None:
        table = self.work / "table.json"
        names = list(REPORTS)
        if table.is_file():
            name = json.loads(table.read_text())["name"]
            names += [name, name.removesuffix(".jsonl") + ".networks.jsonl"]
            self.state["table"] = name
        for n in names:
            self.archive.put(self.work / n)
        self.archive.put_json("session.json", self.state)

    def summary(self) -> str:
        lines = ["session summary:"]
        for s in self.state["steps"]:
            r = s.get("result") or {}
            detail = {k: v for k, v in r.items() if k in ("measured", "left", "networks", "s_per_key", "s_per_network",
                                                            "rc", "reason", "table", "skipped", "network_us")}
            if "sobol" in r:
                detail = {part: r[part] for part in ("sobol", "reference")}
            lines.append(f"  {s['step']:10s} {s['status']:24s} {s.get('seconds', 0):6.1f} s  "
                         f"{json.dumps(detail, default=str)[:200]}")
        files = sorted(p.name for p in self.archive.out.iterdir() if p.is_file())
        lines.append(f"  archived in {self.archive.out}: {', '.join(files)}")
        return "\n".join(lines)


def cudnn_comparison(heuristics: dict, autotuned: dict) -> dict | None:
    """Autotuned over heuristic latency (median over the keys both timed, and the network) and
    the seconds per key of each: the evidence for the table's cudnn_benchmark setting."""
    h, a = heuristics.get("median_us") or {}, autotuned.get("median_us") or {}
    ratios = sorted(a[k] / h[k] for k in h if a.get(k) and h.get(k))
    if not ratios:
        return None
    out = {"keys": len(ratios), "autotuned_over_heuristics_median": ratios[len(ratios) // 2],
           "min": ratios[0], "max": ratios[-1], "s_per_key_heuristics": heuristics.get("s_per_key"),
           "s_per_key_autotuned": autotuned.get("s_per_key")}
    if heuristics.get("network_us") and autotuned.get("network_us"):
        out["network_autotuned_over_heuristics"] = autotuned["network_us"] / heuristics["network_us"]
    return out


class _Killer:
    """Kills a step's whole process group when its time is up (a hung CUDA call included)."""

    def __init__(self, proc: subprocess.Popen, deadline: float):
        import threading

        self.proc, self.deadline, self.fired = proc, deadline, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            if self.proc.poll() is not None:
                # The step ended; whatever it started (pytest, the benchmark) must not outlive it
                # and hold the pipe the session reads.
                self._kill_group()
                return
            if time.monotonic() >= self.deadline:
                self.fired = True
                self._kill_group()
                return

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def cancel(self) -> None:
        self._stop.set()


__all__ = ["Session", "Archive", "machine_facts"]
