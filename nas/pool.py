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
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latbench import schema
from latbench.errors import LatbenchError, SearchError
from latbench.files import atomic_path, clean_json
from latbench.limits import MAX_MS, MIN_MS
from latbench.space import MAX_SAMPLE, load_space
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
        """Write the pool atomically (latbench.files): whole or not at all."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, X=self.X, latency_ms=self.latency_ms, raw_sum_ms=self.raw_sum_ms,
                                measured_fraction=self.measured_fraction,
                                meta=json.dumps(clean_json(self.meta), allow_nan=False))
            f.flush()
            os.fsync(f.fileno())


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


#: Largest pool file read (2^24 networks of 41 int8 positions and three float64 columns: ~1.1 GB).
MAX_POOL_BYTES = 2 << 30


def load_pool(path: str | Path) -> Pool:
    """A pool file, every array checked: X integer [N, D] with 1 <= N <= 2^24, indices >= 0; three
    float columns of N values (latencies finite and positive, measured fractions in [0, 1]); meta a
    JSON object whose groups, if any, are positive finite ms. SearchError names what is wrong."""
    p = schema.check_input(path, "pool", SearchError, hint=" (make one with latbench sample --out)")
    if p.stat().st_size > MAX_POOL_BYTES:
        raise SearchError(f"{p}: larger than {MAX_POOL_BYTES >> 30} GiB: not a latbench pool")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ARRAYS + ("meta",) if k not in f.files]
            if missing:
                raise SearchError(f"{p}: not a latbench pool (no {missing[0]!r} array)")
            arrays = {k: f[k] for k in ARRAYS}
            meta_text = f["meta"]
    except SearchError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise SearchError(f"{p}: not a latbench pool ({type(err).__name__}: {str(err)[:80]})") from None
    pool = Pool(*_check_arrays(arrays, str(p)), _check_meta(meta_text, str(p)))
    space = _space_of(pool.meta)
    return check_space(pool, space, p) if space is not None else pool


def _space_of(meta: dict):
    """The pool's space where this machine has it (its file, else a bundled space of its name)."""
    for source in (meta.get("space_file"), meta.get("space")):
        if isinstance(source, str) and source:
            try:
                space = load_space(source)
            except LatbenchError:
                continue
            if space.name == meta.get("space"):
                return space
    return None


def check_space(pool: Pool, space, path) -> Pool:
    """`pool` if it is a pool of `space`: its name, its number of positions, every index within
    that position's choices; SearchError naming the first that is not."""
    if pool.meta.get("space") != space.name or pool.X.shape[1] != space.n_dims:
        raise SearchError(f"{path}: a pool of the {pool.meta.get('space')} space with {pool.X.shape[1]} positions, "
                          f"not of the {space.name} space ({space.n_dims} positions)")
    bad = np.nonzero((pool.X >= space.cardinalities).any(axis=0))[0]
    if len(bad):
        i = int(bad[0])
        raise SearchError(f"{path}: position {i} ({space.dims[i].name}) holds {int(pool.X[:, i].max())}, outside "
                          f"0..{space.dims[i].size - 1}: not a pool of the {space.name} space")
    return pool


ARRAYS = ("X", "latency_ms", "raw_sum_ms", "measured_fraction")


def _check_arrays(a: dict, source: str) -> tuple:
    X = a["X"]
    if X.dtype.kind not in "iu" or X.ndim != 2 or not 1 <= X.shape[0] <= MAX_SAMPLE or not 1 <= X.shape[1] <= 1024:
        raise SearchError(f"{source}: X must be integers [N, D] with 1 <= N <= {MAX_SAMPLE:,}, got "
                          f"{X.dtype} {list(X.shape)}")
    if X.min() < 0:
        raise SearchError(f"{source}: X holds a negative index: not an encoded network")
    out = [X]
    for name in ARRAYS[1:]:
        v = a[name]
        if v.dtype.kind not in "fiu" or v.shape != (len(X),):
            raise SearchError(f"{source}: {name} must be {len(X)} numbers (one per network), got {v.dtype} "
                              f"{list(v.shape)}")
        v = v.astype(np.float64)
        ok = (v >= 0) & (v <= 1) if name == "measured_fraction" else (v >= MIN_MS) & (v <= MAX_MS)
        if not (np.isfinite(v) & ok).all():
            bad = v[~(np.isfinite(v) & ok)][0]
            allowed = "[0, 1]" if name == "measured_fraction" else f"[{MIN_MS:g}, {MAX_MS:g}] ms"
            raise SearchError(f"{source}: {name} holds {bad}, outside {allowed}: draw the pool again")
        out.append(v)
    return tuple(out)


def _check_meta(text, source: str) -> dict:
    if text.dtype.kind != "U" or text.ndim != 0:
        raise SearchError(f"{source}: meta must be JSON text")
    meta = schema.loads(str(text), f"{source}: meta", "pool", SearchError)
    meta = schema.fields(meta, f"{source}: meta", {}, {"space": (str, None), "groups": (list, None),
                                                        "table_provenance": (str, None), "calibrated": (bool, None)},
                         error=SearchError, extra=True)
    for i, e in enumerate(meta.get("groups") or []):
        schema.number(e, f"{source}: meta.groups[{i}]", 0.0, MAX_MS, lo_open=True, error=SearchError)
    return meta
