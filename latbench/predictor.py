"""Whole-network latency from a table: per network, or millions of encoded networks at once.

Per block the table's median is used (integer nanoseconds, so sums are exact and the per-network
and vectorised paths agree to the bit); keys the table lacks are filled by the estimator where
asked. The raw sum is always reported beside the calibrated value (latbench.calibration) that
`latbench validate` stores with the table. Imports neither torch nor TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from latbench import calibration as cal
from latbench.arch import Arch
from latbench.arch_io import load_arch
from latbench.errors import MissingKeysError
from latbench.estimate import Estimator
from latbench.features import column, spec_matrix, traffic_bytes, weight_bytes
from latbench.blocks import KINDS, BlockSpec, kind_index
from latbench.precision import elem_bytes
from latbench.space import index_for, load_space
from latbench.table import Table
CHUNK = 1 << 16  # networks per vectorised pass: the work stays in the CPU caches


def to_ns(us) -> np.ndarray:
    return np.rint(np.asarray(us, dtype=np.float64) * 1000).astype(np.int64)


@dataclass
class Prediction:
    """Latency of one network. Times in milliseconds, per forward pass of one batch."""

    latency_ms: float
    raw_sum_ms: float
    calibrated: bool
    coverage: float  # distinct keys found in the table / distinct keys needed
    measured_fraction: float  # share of the raw sum that comes from measured rows
    blocks: list = field(default_factory=list)  # [{index, stage, key, us, source}]
    stages: list = field(default_factory=list)  # [{stage, blocks, us}]
    missing: list = field(default_factory=list)  # keys estimated (not in the table)
    #: The raw sum lies outside the range of networks the calibration was fitted on.
    extrapolated: bool = False

    @property
    def calibration_used(self) -> str:
        """How `latency_ms` was obtained: the raw sum, the fitted calibration, or (outside the
        fitted range) the raw sum times the correction ratio clamped to the fitted networks'."""
        if not self.calibrated:
            return "the raw sum"
        return "the raw sum times the clamped correction ratio" if self.extrapolated else "the fitted calibration"

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("latency_ms", "raw_sum_ms", "calibrated", "extrapolated",
                                              "coverage", "measured_fraction", "stages", "blocks", "missing")}
        return out | {"calibration_used": self.calibration_used}


class Predictor:
    """Predicts latency from `table`; `space` (default GPUNet) serves `predict_encoded`."""

    def __init__(self, table: Table, space=None):
        self.table = table
        self.elem_bytes = elem_bytes(table.precision)
        ok = table.ok()
        self._measured_ns = dict(zip(ok, to_ns(list(ok.values())).tolist()))
        self.calibration = table.calibration
        self._space = space
        self._lut = None

    @cached_property
    def estimator(self) -> Estimator | None:
        """The regression that fills keys the table lacks (None when it has too few rows);
        fitted, with its cross-validation, only when a prediction first needs it."""
        ok = self.table.ok()
        return Estimator.fit(list(ok), np.array(list(ok.values())), self.elem_bytes)

    @property
    def space(self):
        """The space of `predict_encoded` and `screen` (default: GPUNet)."""
        if self._space is None:
            self._space = load_space()
        return self._space

    @property
    def cache_bytes(self) -> int:
        return self.table.cache_bytes

    # -- one network ---------------------------------------------------------------------------
    def block_ns(self, specs: list[BlockSpec], missing: str = "error") -> tuple[np.ndarray, np.ndarray]:
        """(ns per block, measured flag per block). missing: error | estimate."""
        ns = np.array([self._measured_ns.get(s.key, -1) for s in specs], dtype=np.int64)
        measured = ns >= 0
        if not measured.all():
            lacking = sorted({s.key for s, m in zip(specs, measured) if not m})
            if missing != "estimate" or self.estimator is None:
                why = "" if missing != "estimate" else " (the table has too few rows to estimate)"
                raise MissingKeysError(f"the table lacks {len(lacking)} of the keys{why}", lacking)
            todo = [s for s, m in zip(specs, measured) if not m]
            ns[~measured] = to_ns(self.estimator.predict_specs(todo))
        return ns, measured

    def aggregates(self, arch: Arch, missing: str = "error") -> dict:
        """Per-network sums the calibration uses: ns per block and in total, per kind, bytes."""
        ns, measured = self.block_ns(list(arch.blocks), missing)
        kinds = np.array([kind_index(b.kind) for b in arch.blocks])
        m = spec_matrix(list(arch.blocks))
        wb = weight_bytes(m, self.elem_bytes).astype(np.int64)
        tb = traffic_bytes(m, self.elem_bytes).astype(np.int64)
        return {"ns": ns, "measured": measured, "total_ns": np.array([ns.sum()]),
                "n_blocks": np.array([len(ns)]), "weight_bytes": np.array([wb.sum()]),
                "traffic_bytes": np.array([tb.sum()]),
                "kind_ns": {k: np.array([ns[kinds == i].sum()]) for i, k in enumerate(KINDS)}}

    def predict(self, arch: Arch, missing: str = "error") -> Prediction:
        """Latency of one network; keys the table lacks: `missing` = error | estimate."""
        agg = self.aggregates(arch, missing)
        ns, measured, total = agg["ns"], agg["measured"], agg["total_ns"]
        latency_us, outside = self._finish(total, agg["n_blocks"], agg["kind_ns"], agg["weight_bytes"],
                                           agg["traffic_bytes"])
        keys = [b.key for b in arch.blocks]
        found = {k for k, m in zip(keys, measured) if m}
        blocks = [{"index": i, "stage": s, "key": k, "us": n / 1000.0,
                   "source": "measured" if m else "estimated"}
                  for i, (s, k, n, m) in enumerate(zip(arch.stage_of, keys, ns.tolist(), measured))]
        stages = []
        for b in blocks:
            if not stages or stages[-1]["stage"] != b["stage"]:
                stages.append({"stage": b["stage"], "blocks": 0, "us": 0.0})
            stages[-1]["blocks"] += 1
            stages[-1]["us"] += b["us"]
        return Prediction(
            latency_ms=float(latency_us[0]) / 1000.0, raw_sum_ms=float(total[0]) / 1e6,
            calibrated=self.calibration is not None, coverage=len(found) / len(set(keys)),
            measured_fraction=float(ns[measured].sum() / max(total[0], 1)), blocks=blocks,
            stages=stages, missing=sorted(set(keys) - found),
            extrapolated=bool(outside[0]),
        )

    def _finish(self, total_ns, n_blocks, kind_ns, wbytes, tbytes) -> tuple[np.ndarray, np.ndarray]:
        """(latency in microseconds, mask of networks outside the calibration's fitted range) from
        per-network aggregates; the raw sum when the table has no calibration."""
        if self.calibration is None:
            return total_ns / 1000.0, np.zeros(np.shape(total_ns), bool)
        f = cal.network_features(total_ns, n_blocks, kind_ns, wbytes, self.calibration["cache_bytes"], tbytes)
        return cal.apply_bounded(self.calibration, f, strict=True)

    # -- many encoded networks -----------------------------------------------------------------
    def predict_encoded(self, X) -> np.ndarray:
        """Latency in ms of encoded networks X [N, D] of `space` (calibrated when the table is)."""
        return self.screen(X)[0]

    def raw_sum_encoded(self, X) -> np.ndarray:
        """Plain sum of block latencies in ms, without calibration."""
        return self.screen(X, calibrated=False)[0]

    def screen(self, X, calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(latency ms, fraction of it from measured rows) for encoded networks X [N, D].

        Missing keys are filled by the estimator, computed once over every key of the space.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.space.n_dims:
            raise ValueError(f"X must be [N, {self.space.n_dims}], got {X.shape}")
        lut = self._space_lut()
        use_cal = calibrated and self.calibration is not None
        lat, frac = np.empty(len(X)), np.empty(len(X))
        for s in range(0, len(X), CHUNK):
            part = X[s:s + CHUNK]
            total = np.zeros(len(part), np.int64)
            meas = np.zeros(len(part), np.int64)
            nb = np.zeros(len(part), np.int64)
            wb = np.zeros(len(part), np.int64)
            tb = np.zeros(len(part), np.int64)
            kind_ns = {k: np.zeros(len(part), np.int64) for k in KINDS}
            for slot, code, mult in lut.index.slot_codes(part):
                ns = lut.ns[slot.name][code] * mult
                total += ns
                meas += lut.measured_ns[slot.name][code] * mult
                if use_cal:
                    nb += mult
                    wb += lut.wbytes[slot.name][code] * mult
                    tb += lut.tbytes[slot.name][code] * mult
                    if slot.kind is not None:
                        kind_ns[slot.kind] += ns
                    else:  # a candidate position: the kind depends on the network
                        kinds = lut.kind[slot.name][code]
                        for k in lut.slot_kinds[slot.name]:
                            kind_ns[list(KINDS)[k]] += np.where(kinds == k, ns, 0)
            lat[s:s + len(part)] = (self._finish(total, nb, kind_ns, wb, tb)[0] if use_cal else total / 1000.0) / 1000.0
            frac[s:s + len(part)] = meas / np.maximum(total, 1)
        return lat, frac

    def _space_lut(self) -> "_SpaceLut":
        if self._lut is None:
            self._lut = _SpaceLut(self, index_for(self.space))
        return self._lut


class _SpaceLut:
    """Per slot of the space index: ns, measured ns and weight bytes per code."""

    def __init__(self, pred: Predictor, index):
        self.index = index
        keys = index.key_fields
        ids = {index.id_of(BlockSpec.from_key(k)): n for k, n in pred._measured_ns.items()}
        ids.pop(-1, None)  # table rows outside this space
        measured = np.zeros(index.n_keys, bool)
        key_ns = np.zeros(index.n_keys, np.int64)
        if ids:
            measured[list(ids)] = True
            key_ns[list(ids)] = list(ids.values())
        if not measured.all():
            if pred.estimator is None:
                raise MissingKeysError(
                    f"the table measures {measured.sum()} of the {index.n_keys:,} keys of the "
                    f"{index.space.name} space and has too few rows to estimate the rest; "
                    "fill it with latbench build-table --sample N", [])
            key_ns[~measured] = to_ns(pred.estimator.predict_matrix(keys[~measured]))
        key_wb = weight_bytes(keys, pred.elem_bytes).astype(np.int64)
        key_tb = traffic_bytes(keys, pred.elem_bytes).astype(np.int64)
        self.ns, self.measured_ns, self.wbytes, self.tbytes, self.kind, self.slot_kinds = {}, {}, {}, {}, {}, {}
        kind_col = column(keys, "kind")
        for slot in index.slots:
            valid = slot.key_ids >= 0
            kid = np.where(valid, slot.key_ids, 0)
            self.ns[slot.name] = np.where(valid, key_ns[kid], 0)
            self.measured_ns[slot.name] = np.where(valid & measured[kid], key_ns[kid], 0)
            self.wbytes[slot.name] = np.where(valid, key_wb[kid], 0)
            self.tbytes[slot.name] = np.where(valid, key_tb[kid], 0)
            self.kind[slot.name] = np.where(valid, kind_col[kid], -1)
            self.slot_kinds[slot.name] = np.unique(kind_col[kid[valid]])


def group_counts(latency_ms, edges: list[float]) -> list[tuple[float, float, int]]:
    """Latency groups: (lo, hi, networks) for [0, e1), [e1, e2), ..., [ek, inf); latencies and
    boundaries in ms."""
    bounds = [0.0] + sorted(edges) + [float("inf")]
    lat = np.asarray(latency_ms)
    return [(lo, hi, int(((lat >= lo) & (lat < hi)).sum())) for lo, hi in zip(bounds, bounds[1:])]


REFERENCE_NETWORKS = ("gpunet-0", "gpunet-1", "gpunet-2")


def predict_references(table: Table, names=REFERENCE_NETWORKS) -> dict[str, Prediction]:
    """NVIDIA's released GPUNets (or other bundled networks) predicted with `table`, estimating
    keys it lacks."""
    pred = Predictor(table)
    return {name: pred.predict(load_arch(name), missing="estimate") for name in names}
