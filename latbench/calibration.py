"""From a sum of isolated blocks to whole-network latency: fitted, cross-validated corrections.

A plain sum of table entries misses what a network does differently from its blocks in
isolation: a fixed cost per launch counted once per block, cache state, cross-block fusion
(measurement.md). Candidate models, each linear in network-level features:

* ``linear``:           e2e = a * sum + b * n_blocks + c
* ``per-kind``:         e2e = sum_k a_k * sum_k + b * n_blocks + c   (k over block kinds)
* ``linear+weights``:   linear + d * weight_MB + f * min(weight_bytes / cache, 4)
* ``linear+traffic``:   linear + t * traffic_MB   (the network's unfused memory traffic: every
                        block's weights, input, output and intermediates written and read once)
* ``per-kind+weights``: per-kind + the two weight terms

Weight bytes relative to the last-level cache capture that back-to-back runs of a network whose
weights fit in L2 run with warm weights. Traffic captures that blocks timed alone keep their
working set in cache while a network streams it: on this project's 2-core CPU, warm block sums
fell 24 % short of timm's memory-bound MobileNets but 2 % of GPUNet, and a traffic term took the
held-out error over 69 networks of the three families from 4.3 % to 2.6 % (mean). Fits minimise relative error (rows weighted 1/e2e).
The model is chosen by leave-one-out error and the reported error is always held-out.
Pure numpy.
"""

from __future__ import annotations

import numpy as np

from latbench.blocks import KINDS

#: Candidate models by their features; "per_kind" stands for one "<kind>_us" column per block kind
#: present in the networks fitted on (kinds no network has would only add empty columns).
MODELS = {
    "linear": ("sum_us", "n_blocks", "one"),
    "per-kind": ("per_kind", "n_blocks", "one"),
    "linear+weights": ("sum_us", "n_blocks", "weight_mb", "weight_over_cache", "one"),
    "per-kind+weights": ("per_kind", "n_blocks", "weight_mb", "weight_over_cache", "one"),
    "linear+traffic": ("sum_us", "n_blocks", "traffic_mb", "one"),
    "per-kind+traffic": ("per_kind", "n_blocks", "traffic_mb", "one"),
}
RIDGE = 1e-6


def model_features(model: str, features: dict) -> tuple[str, ...]:
    """The feature columns of `model` for these networks."""
    kinds = tuple(f"{k}_us" for k in KINDS if np.any(np.asarray(features[f"{k}_us"]) != 0))
    return tuple(c for name in MODELS[model] for c in (kinds if name == "per_kind" else (name,)))


def network_features(sum_ns, n_blocks, kind_ns: dict, weight_bytes, cache_bytes: int, traffic_bytes) -> dict:
    """Feature columns (float64 arrays) from per-network aggregates; integer inputs in ns, bytes."""
    f = {"sum_us": np.asarray(sum_ns) / 1000.0, "n_blocks": np.asarray(n_blocks, dtype=np.float64),
         "one": np.ones(np.shape(sum_ns)), "weight_mb": np.asarray(weight_bytes) / 1e6,
         "weight_over_cache": np.minimum(np.asarray(weight_bytes) / max(cache_bytes, 1), 4.0),
         "traffic_mb": np.asarray(traffic_bytes) / 1e6}
    for k in KINDS:
        f[f"{k}_us"] = np.asarray(kind_ns.get(k, np.zeros(np.shape(sum_ns)))) / 1000.0
    return f


def apply(calibration: dict, features: dict) -> np.ndarray:
    """Calibrated latency in microseconds, computed term by term in a fixed order."""
    acc = np.zeros(np.shape(features["sum_us"]))
    for name, coef in zip(calibration["features"], calibration["coef"]):
        acc = acc + coef * features[name]
    return acc


#: How far beyond the fitted range of raw sums a calibration is applied as fitted (a factor).
SLACK = 1.5
#: Bounds of the correction ratio (calibrated / raw sum) for calibrations stored without their own.
DEFAULT_RATIO_RANGE = (0.5, 2.0)


def in_range(calibration: dict, sum_us, slack: float = SLACK):
    """Whether raw sums lie within (a factor `slack` of) the range the calibration was fitted on;
    outside it the fitted form is an extrapolation. Scalars or arrays."""
    lo, hi = calibration.get("fitted_range_us", (0.0, float("inf")))
    s = np.asarray(sum_us, dtype=np.float64)
    return (lo / slack <= s) & (s <= hi * slack)


def apply_bounded(calibration: dict, features: dict) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated latency in microseconds, mask of networks outside the fitted range).

    Inside the range the fitted form applies. Outside it, a linear form with an intercept can
    run away (a CPU calibration fitted on 1-2 ms networks moved 100 ms networks by 5-24 %), so
    the network gets its raw sum times the correction ratio (calibrated / raw) clamped to the
    ratios the calibration gave the networks it was fitted on: a bounded, proportional
    correction.
    """
    sums = np.asarray(features["sum_us"], dtype=np.float64)
    value = apply(calibration, features)
    outside = ~in_range(calibration, sums)
    if outside.any():
        lo, hi = calibration.get("ratio_range") or DEFAULT_RATIO_RANGE
        ratio = np.clip(value / np.maximum(sums, 1e-12), lo, hi)
        value = np.where(outside, sums * ratio, value)
    return value, outside


def _fit(F: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = 1.0 / y  # relative error
    A = F * w[:, None]
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    As = A / scale
    coef = np.linalg.solve(As.T @ As + RIDGE * np.eye(F.shape[1]), As.T @ (y * w))
    return coef / scale


def _loo(F: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions."""
    pred = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        pred[i] = F[i] @ _fit(F[keep], y[keep])
    return pred


def error_report(measured_us, predicted_us) -> dict:
    """How predictions compare with measurements, in percent and by rank."""
    from scipy import stats

    m, p = np.asarray(measured_us, dtype=np.float64), np.asarray(predicted_us, dtype=np.float64)
    err = (p - m) / m * 100
    tau = stats.kendalltau(m, p).statistic if len(m) > 1 else float("nan")
    rho = stats.spearmanr(m, p).statistic if len(m) > 1 else float("nan")
    return {
        "n": int(len(m)),
        "within_3_pct": float(np.mean(np.abs(err) <= 3) * 100),
        "within_5_pct": float(np.mean(np.abs(err) <= 5) * 100),
        "within_10_pct": float(np.mean(np.abs(err) <= 10) * 100),
        "mean_abs_pct_error": float(np.mean(np.abs(err))),
        "median_abs_pct_error": float(np.median(np.abs(err))),
        "max_abs_pct_error": float(np.max(np.abs(err))),
        "bias_pct": float(np.mean(err)),
        "kendall_tau": float(tau),
        "spearman": float(rho),
    }


def fit_calibration(features: dict, measured_us, cache_bytes: int, models=None) -> tuple[dict, dict]:
    """Choose and fit a calibration model.

    Returns (calibration record to store with the table, report with every candidate's
    leave-one-out metrics and the held-out predictions of the chosen one).
    """
    y = np.asarray(measured_us, dtype=np.float64)
    columns = {m: model_features(m, features) for m in (models or MODELS)}
    names = [m for m in columns if len(columns[m]) < len(y) - 1]
    if not names:
        raise ValueError(f"{len(y)} networks are too few to fit a calibration (need at least 5)")
    candidates = {}
    for name in names:
        F = np.stack([features[c] for c in columns[name]], axis=1)
        held_out = _loo(F, y)
        candidates[name] = {"loo": error_report(y, held_out), "held_out_us": held_out.tolist()}
    best = min(names, key=lambda n: (candidates[n]["loo"]["mean_abs_pct_error"],
                                     candidates[n]["loo"]["max_abs_pct_error"]))
    F = np.stack([features[c] for c in columns[best]], axis=1)
    sums = np.asarray(features["sum_us"])
    coef = _fit(F, y)
    ratios = (F @ coef) / sums
    record = {"model": best, "features": list(columns[best]), "coef": coef.tolist(),
              "cache_bytes": int(cache_bytes), "n_networks": int(len(y)),
              "fitted_range_us": [float(sums.min()), float(sums.max())],
              "ratio_range": [float(ratios.min()), float(ratios.max())],
              "cv": candidates[best]["loo"] | {"method": "leave-one-out"}}
    return record, {"chosen": best, "candidates": candidates}
