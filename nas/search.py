"""Stage two of the search: inside one latency group, propose, train, record; resumable.

The driver is stateless (optuna-style ask/tell): before every proposal it knows only the results
log. Options are checked before any work starts; `--resume` continues a killed search with
nothing lost and no finished trial repeated (nas.results). Accuracy comes from the short-training
proxy; latency is always predicted at the network's real resolution and the table's precision,
and when the search runs on the table's device every trained network's missing blocks are
measured first, so the reported latency rests on measured rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from latbench.arch_io import arch_to_json
from latbench.console import console
from latbench.errors import LatbenchError, SearchError
from latbench.files import check_distinct, check_output_dir, write_json
from latbench.predictor import Predictor
from latbench.progress import Progress
from latbench.provenance import on_table_device
from latbench.table import load_table, table_files
from nas import lifeline
from nas.pool import Pool, check_space, load_pool, make_pool
from nas.propose import METHODS, Observations, Sampler, sampler_for, scale, trial_rng
from nas.results import ResultsLog, check_history
from latbench.space import load_space


@dataclass(frozen=True)
class SearchConfig:
    table: str
    latency_max: float
    latency_min: float = 0.0
    space: str = "gpunet"
    budget: int = 64
    parallel: int = 1
    method: str = "lamcts"
    seed: int = 0
    pool: str | None = None
    pool_size: int = 1 << 16
    train: dict = field(default_factory=dict)
    n_init: int = 8
    leaf_size: int = 10
    cp: float = 0.1
    measure: bool = True
    top_k: int = 5

    def check(self) -> None:
        """Refuse bad options with one line, before any work."""
        if self.budget < 1:
            raise SearchError(f"--budget {self.budget}: at least one trial")
        if self.parallel < 1:
            raise SearchError(f"--parallel {self.parallel}: at least one worker")
        if self.n_init < 1 or self.leaf_size < 2:
            raise SearchError(f"--n-init {self.n_init} / --leaf-size {self.leaf_size}: need >= 1 and >= 2")
        if self.method not in METHODS:
            raise SearchError(f"--method {self.method}: use {', '.join(METHODS)}")
        if not 0 <= self.latency_min < self.latency_max:
            raise SearchError(f"latency group [{self.latency_min}, {self.latency_max}) ms is empty; "
                              "need 0 <= --latency-min < --latency-max")
        if self.pool_size < 1 or self.pool_size & (self.pool_size - 1):
            raise SearchError(f"--pool-size {self.pool_size}: use a power of two (Sobol balance)")
        from nas.data import check_data
        from nas.evaluate import TrainConfig

        TrainConfig(**self.train).check()
        check_data(self.train.get("data", "digits"))


def group_members(cfg: SearchConfig, pool: Pool) -> np.ndarray:
    members = pool.in_group(cfg.latency_min, cfg.latency_max)
    if len(members) == 0:
        raise SearchError(
            f"no network of the {len(pool)}-network pool is predicted in [{cfg.latency_min}, "
            f"{cfg.latency_max}) ms (the pool spans {pool.latency_ms.min():.3f}-{pool.latency_ms.max():.3f} ms); "
            "choose another latency group")
    if cfg.budget > len(members):
        raise SearchError(f"--budget {cfg.budget} exceeds the {len(members)} networks of the latency group; "
                          "lower it or widen the group")
    return members


#: What a search writes into its output folder (beside pool.npz, which it may also read).
OUTPUT_FILES = ("results.jsonl", "best.json", "best.onnx", "summary.json")


def get_pool(cfg: SearchConfig, space, out_dir: Path) -> Pool:
    if cfg.pool:
        return check_space(load_pool(cfg.pool), space, cfg.pool)
    path = out_dir / "pool.npz"
    if path.is_file():
        return check_space(load_pool(path), space, path)
    pool = make_pool(cfg.table, space, cfg.pool_size, cfg.seed)
    pool.save(path)
    return pool


def run_search(cfg: SearchConfig, out_dir: str | Path, *, resume: bool = False, executor=None,
               progress: bool = True) -> dict:
    """Run (or resume) a search; returns the summary also written to OUT/summary.json."""
    out_dir = Path(out_dir)
    cfg.check()
    check_output_dir(out_dir, "search output folder")
    # Its own pool.npz may be given back as --pool (a re-used pool); its other files are written.
    check_distinct({"the table": table_files(cfg.table), "the pool": cfg.pool,
                    "the search's output files": [out_dir / n for n in OUTPUT_FILES]})
    space = load_space(cfg.space)
    load_table(cfg.table)
    pool = get_pool(cfg, space, out_dir)
    members = group_members(cfg, pool)
    log = ResultsLog(out_dir)
    history = log.open(asdict(cfg) | {"space_file": str(space.source), "group_size": int(len(members))},
                       resume)
    check_history(history, space, log.path, len(pool))
    measure_table = cfg.table if cfg.measure and on_table_device(load_table(cfg.table)) else None
    if executor is None:
        from nas.executors import LocalExecutor

        executor = LocalExecutor(cfg.parallel)
    sampler = sampler_for(cfg.method, n_init=cfg.n_init, leaf_size=cfg.leaf_size, cp=cfg.cp, seed=cfg.seed)
    payload = {"space": str(space.source), "train": cfg.train, "measure_table": measure_table,
               "driver": lifeline.driver()}
    running: dict[int, dict] = {}
    for trial, rec in sorted(history.in_flight.items()):  # started before a crash: run them again
        running[trial] = rec
        executor.submit(trial, payload | {"x": rec["x"]})
    best = history.best()
    with Progress(cfg.budget, f"search ({cfg.method})", enabled=progress,
                  status=_best_text(best)) as bar:
        bar.advance(len(history.finished), status=_best_text(best))
        try:
            while len(history.finished) < cfg.budget:
                while (len(running) < executor.capacity
                       and len(history.finished) + len(running) < cfg.budget):
                    trial = history.next_trial_id()
                    idx, info = _ask(sampler, cfg.seed, space, pool, members, history, running, trial)
                    rec = log.start(trial, idx, pool.X[idx], pool.latency_ms[idx], info)
                    history.in_flight[trial] = running[trial] = rec
                    executor.submit(trial, payload | {"x": rec["x"]})
                    bar.describe(f"trial {trial}: pool #{idx}")
                for trial, result in executor.poll(timeout=1.0):
                    start = running.pop(trial)
                    result |= _latency(cfg, space, start["x"], measure_table)
                    history.finished[trial] = log.finish(start, result)
                    history.in_flight.pop(trial, None)
                    best = history.best()
                    bar.advance(status=_best_text(best))
        finally:
            executor.shutdown()
    return summarize(cfg, space, log.read(), out_dir)


def _ask(sampler: Sampler, seed: int, space, pool: Pool, members, history, running, trial) -> tuple[int, dict]:
    """(pool index of the next trial's network, how it was proposed)."""
    used = history.used_indices() | {r["pool_index"] for r in running.values()}
    free = np.array([m for m in members if int(m) not in used])
    X, y = history.xy()
    pending = np.array([r["x"] for r in running.values()]).reshape(-1, space.n_dims)
    card = space.cardinalities
    proposal = sampler.propose(Observations(scale(X.reshape(-1, space.n_dims), card), y),
                               scale(pool.X[free], card), scale(pending, card), trial_rng(seed, trial))
    if "fallback" in proposal.info:
        console(stderr=True).print(f"trial {trial}: picked at random, BO failed ({proposal.info['fallback']})")
    return int(free[proposal.index]), proposal.info


def _latency(cfg, space, x, measure_table) -> dict:
    """Predicted latency at the real resolution, with the rows measured for this trial."""
    if not measure_table:
        return {}
    pred = Predictor(load_table(cfg.table), space).predict(space.decode(x), missing="estimate")
    return {"predicted_ms": pred.latency_ms, "measured_fraction": pred.measured_fraction}


def _best_text(best: dict | None) -> str:
    return f"best {best['top1']:.2f} %" if best else "best -"


def summarize(cfg: SearchConfig, space, history, out_dir: Path) -> dict:
    """Top-k trials, the best network as latbench JSON and ONNX, summary.json."""
    done = sorted(history.done, key=lambda r: -r["top1"])
    top = [{"trial": r["trial"], "x": r["x"], "predicted_ms": r["predicted_ms"], "top1": r["top1"],
            "params": r.get("params"), "measured_fraction": r.get("measured_fraction")}
           for r in done[:cfg.top_k]]
    summary = {"trials": len(history.finished), "failed": len(history.finished) - len(done),
               "budget": cfg.budget, "method": cfg.method, "group_ms": [cfg.latency_min, cfg.latency_max],
               "top": top, "proxy": cfg.train, "table": cfg.table, "space": space.name,
               "units": {"predicted_ms": "ms per forward pass of one batch at the real resolution",
                         "top1": "percent, proxy training", "params": "proxy network parameters"}}
    if done:
        best = space.decode(done[0]["x"])
        write_json(out_dir / "best.json", arch_to_json(best), indent=2)
        from latbench.onnx_export import export_onnx

        precision = load_table(cfg.table).precision
        export_onnx(best, out_dir / "best.onnx", precision=precision if precision != "bf16" else "fp32")
        summary["best"] = {"json": str(out_dir / "best.json"), "onnx": str(out_dir / "best.onnx"),
                           "params": best.params, "macs": best.macs, "resolution": best.resolution}
    write_json(out_dir / "summary.json", summary)
    return summary


def default_parallel() -> int:
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except ImportError:
        return 1


__all__ = ["SearchConfig", "run_search", "summarize", "default_parallel"]
