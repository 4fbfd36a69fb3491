"""Latency estimates for keys a table lacks: a per-kind regression fitted on the table's rows.

Model: ridge regression of log(median_us) on `latbench.features.block_features` (log FLOPs,
bytes, channels, size, kernel, stride, expansion, SE, activation), one per block kind; a kind with
too few rows borrows a model fitted on all rows. Its error is measured by k-fold cross-validation
on the table itself and reported, never assumed. Predictions are computed element by element in a
fixed order, so a key gets the same estimate whether it is predicted alone or among 200,000.
Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latbench.blocks import KINDS, parse_key
from latbench.features import block_features, column, spec_matrix
from latbench.limits import MAX_US, MIN_US

MIN_ROWS_PER_KIND = 12
#: Bounds of an estimate, microseconds (a nanosecond; a day).
RIDGE = 1e-3
FOLDS = 5


@dataclass
class _Linear:
    """y = b + sum_j w_j * (x_j - mean_j) / scale_j, in log-microseconds."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray) -> "_Linear":
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        A = Z.T @ Z + RIDGE * len(Z) * np.eye(Z.shape[1])
        w = np.linalg.solve(A, Z.T @ (y - y.mean()))
        return cls(mean, scale, w, float(y.mean()))

    def predict(self, X: np.ndarray) -> np.ndarray:
        acc = np.full(len(X), self.bias)
        for j in range(X.shape[1]):  # element-wise, fixed order: batch-size independent
            acc = acc + self.weights[j] * ((X[:, j] - self.mean[j]) / self.scale[j])
        return acc


class Estimator:
    """Per-kind latency regression; see the module docstring."""

    def __init__(self, models: dict[int, _Linear], pooled: _Linear, elem_bytes: int, cv: dict):
        self.models, self.pooled, self.elem_bytes, self.cv = models, pooled, elem_bytes, cv

    @classmethod
    def fit(cls, keys: list[str], median_us: np.ndarray, elem_bytes: int) -> "Estimator | None":
        """Fit on measured rows; None when there are too few rows to say anything."""
        if len(keys) < MIN_ROWS_PER_KIND:
            return None
        m = spec_matrix([parse_key(k) for k in keys])
        X, y = block_features(m, elem_bytes), np.log(np.asarray(median_us, dtype=np.float64))
        kinds = column(m, "kind")
        pooled = _Linear.fit(X, y)
        models = {k: _Linear.fit(X[kinds == k], y[kinds == k])
                  for k in range(len(KINDS)) if (kinds == k).sum() >= MIN_ROWS_PER_KIND}
        est = cls(models, pooled, elem_bytes, {})
        est.cv = est._cross_validate(X, y, kinds)
        return est

    def _predict_log(self, X: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        out = np.empty(len(X))
        for k in np.unique(kinds):
            rows = kinds == k
            out[rows] = self.models.get(int(k), self.pooled).predict(X[rows])
        return out

    def predict_matrix(self, m: np.ndarray) -> np.ndarray:
        """Estimated median_us for each row of a FIELDS matrix, within [MIN_US, MAX_US] (a block far
        outside the table's rows extrapolates; the bounds keep the sum of a network finite)."""
        if len(m) == 0:
            return np.zeros(0)
        log = self._predict_log(block_features(m, self.elem_bytes), column(m, "kind"))
        return np.exp(np.clip(log, np.log(MIN_US), np.log(MAX_US)))

    def predict_specs(self, specs) -> np.ndarray:
        return self.predict_matrix(spec_matrix(list(specs)))

    def _cross_validate(self, X, y, kinds) -> dict:
        """k-fold absolute percentage errors of the same procedure, per kind and overall."""
        rng = np.random.default_rng(0)
        fold = rng.permutation(len(y)) % FOLDS
        pred = np.empty(len(y))
        for f in range(FOLDS):
            train, test = fold != f, fold == f
            if test.sum() == 0 or train.sum() < MIN_ROWS_PER_KIND:
                pred[test] = np.nan
                continue
            part = Estimator({k: _Linear.fit(X[train & (kinds == k)], y[train & (kinds == k)])
                              for k in range(len(KINDS))
                              if (train & (kinds == k)).sum() >= MIN_ROWS_PER_KIND},
                             _Linear.fit(X[train], y[train]), self.elem_bytes, {})
            pred[test] = part._predict_log(X[test], kinds[test])
        ape = np.abs(np.exp(pred - y) - 1) * 100
        out = {"folds": FOLDS, "rows": int(len(y)), "median_abs_pct_error": _stat(np.median, ape),
               "mean_abs_pct_error": _stat(np.mean, ape), "per_kind": {}}
        for k in np.unique(kinds):
            a = ape[kinds == k]
            out["per_kind"][list(KINDS)[k]] = {"rows": int(len(a)), "median_abs_pct_error": _stat(np.median, a),
                                               "own_model": int(k) in self.models}
        return out

    def summary(self) -> str:
        cv = self.cv
        if cv["median_abs_pct_error"] is None:
            return (f"estimate: per-kind ridge regression on {cv['rows']} rows (too few to cross-validate: "
                    "its error is unknown)")
        return (f"estimate: per-kind ridge regression on {cv['rows']} rows, {cv['folds']}-fold "
                f"cross-validated error median {cv['median_abs_pct_error']:.1f} %, "
                f"mean {cv['mean_abs_pct_error']:.1f} %")


def _stat(f, values: np.ndarray) -> float | None:
    """`f` over the folds that could be predicted (None when none could: too few rows)."""
    values = values[np.isfinite(values)]
    return float(f(values)) if len(values) else None
