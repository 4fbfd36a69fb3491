"""Stage one of the search: a Sobol pool of encoded networks with their predicted latencies.

A pool is drawn once (scrambled Sobol, power-of-two size), every member's latency predicted with
the vectorised predictor (estimates fill keys the table lacks; the measured fraction says how
much of each prediction rests on measured rows), and stored as an .npz file:

    X                  int8 [N, D]  encoded networks
    latency_ms         float64 [N]  predicted latency (calibrated when the table is), ms per batch
    raw_sum_ms         float64 [N]  plain sum of table entries, ms
    measured_fraction  float64 [N]  share of raw_sum_ms from measured rows
    meta               JSON text: space, table, its provenance, seed, groups, created_at
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latbench.errors import SearchError
from latbench.predictor import Predictor, group_counts
from latbench.table import load_table, now
from latbench.space import sample


@dataclass
class Pool:
    X: np.ndarray
    latency_ms: np.ndarray
    raw_sum_ms: np.ndarray
    measured_fraction: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.X)

    def in_group(self, lo: float, hi: float) -> np.ndarray:
        """Indices of members with lo <= predicted latency < hi (ms)."""
        return np.nonzero((self.latency_ms >= lo) & (self.latency_ms < hi))[0]

    def group_counts(self, edges: list[float]) -> list[tuple[float, float, int]]:
        """(lo, hi, count) for [0, e1), [e1, e2), ..., [ek, inf)."""
        return group_counts(self.latency_ms, edges)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(tmp, X=self.X, latency_ms=self.latency_ms, raw_sum_ms=self.raw_sum_ms,
                            measured_fraction=self.measured_fraction, meta=json.dumps(self.meta))
        tmp.replace(path)


def make_pool(table_path: str | Path, space, n: int, seed: int = 0, groups=()) -> Pool:
    """Draw `n` networks of `space` and predict them with the table at `table_path`."""
    if n < 1:
        raise SearchError(f"--n {n}: a pool needs at least one network")
    table = load_table(table_path)
    pred = Predictor(table, space)
    X = sample(space, n, seed)
    lat, frac = pred.screen(X)
    raw = pred.raw_sum_encoded(X) if table.calibration else lat
    meta = {"space": space.name, "space_file": str(space.source), "table": str(table_path),
            "table_provenance": table.describe(), "device": table.device_name,
            "precision": table.precision, "batch": table.batch, "calibrated": table.calibration is not None,
            "seed": seed, "n": n, "groups": list(groups), "created_at": now(),
            "estimator": pred.estimator.cv if pred.estimator else None,
            "units": "milliseconds per forward pass of one batch"}
    return Pool(X.astype(np.int8), lat, raw, frac, meta)


def load_pool(path: str | Path) -> Pool:
    try:
        with np.load(path) as f:
            return Pool(f["X"], f["latency_ms"], f["raw_sum_ms"], f["measured_fraction"],
                        json.loads(str(f["meta"])))
    except FileNotFoundError:
        raise SearchError(f"{path}: no such pool file (make one with latbench sample)") from None
    except (OSError, KeyError, ValueError) as err:
        raise SearchError(f"{path}: not a latbench pool: {err}") from None
