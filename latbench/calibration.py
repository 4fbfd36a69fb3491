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

from latbench import schema
from latbench.blocks import KINDS
from latbench.errors import LatbenchError
from latbench.limits import MAX_US, MIN_US

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
#: Correction ratios no calibration may give or store: a network five times slower (or faster)
#: than the sum of its measured blocks means the table or the calibration is wrong, not that the
#: network needs correcting (fitted CPU calibrations give 1.05-1.39).
RATIO_LIMITS = (0.2, 5.0)


def in_range(calibration: dict, sum_us, slack: float = SLACK):
    """Whether raw sums lie within (a factor `slack` of) the range the calibration was fitted on;
    outside it the fitted form is an extrapolation. Scalars or arrays."""
    lo, hi = calibration.get("fitted_range_us", (0.0, float("inf")))
    s = np.asarray(sum_us, dtype=np.float64)
    return (lo / slack <= s) & (s <= hi * slack)


def apply_bounded(calibration: dict, features: dict, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated latency in microseconds, mask of networks outside the fitted range).

    Inside the range the fitted form applies. Outside it, a linear form with an intercept can
    run away (a CPU calibration fitted on 1-2 ms networks moved 100 ms networks by 5-24 %), so
    the network gets its raw sum times the correction ratio (calibrated / raw) clamped to the
    ratios the calibration gave the networks it was fitted on: a bounded, proportional
    correction. A fitted form that gives a value that is not a positive finite number, or that
    is not within RATIO_LIMITS of the raw sum, is treated the same way, so a prediction is always
    positive, finite and bounded; with `strict`, such a value inside the fitted range (where the
    form was fitted to be right) refuses the calibration instead (LatbenchError): it is damaged,
    not extrapolated.
    """
    sums = np.asarray(features["sum_us"], dtype=np.float64)
    with np.errstate(all="ignore"):
        value = apply(calibration, features)
        bad = ~np.isfinite(value) | (value <= 0) | (value < sums * RATIO_LIMITS[0]) | (value > sums * RATIO_LIMITS[1])
        inside = in_range(calibration, sums)
        if strict and (bad & inside).any():
            i = int(np.argmax(bad & inside))
            raise LatbenchError(f"the table's calibration ({calibration['model']}) gives {value[i]:.4g} us for a "
                                f"network of raw sum {sums[i]:.4g} us, inside the range it was fitted on: it is "
                                "damaged; fit it again with latbench validate")
        outside = ~inside | bad
        if outside.any():
            lo, hi = calibration.get("ratio_range") or DEFAULT_RATIO_RANGE
            ratio = np.clip(value / np.maximum(sums, 1e-12), lo, hi)
            ratio = np.where(np.isfinite(ratio), ratio, 1.0)
            value = np.where(outside, sums * ratio, value)
    return value, outside


#: Feature columns a stored calibration may name (see `network_features`).
FEATURES = tuple(dict.fromkeys(n for cols in MODELS.values() for n in cols if n != "per_kind")) + \
    tuple(f"{k}_us" for k in KINDS)


def check(record: dict, where: str, error=LatbenchError) -> dict:
    """A stored calibration record as `predict` uses it, or `error` naming the first bad field and
    its allowed values: a known model, its features (known, as the model forms them) and as many
    finite coefficients, a cache size, a fitted range within [MIN_US, MAX_US], if given a ratio
    range within RATIO_LIMITS, and held-out errors that are numbers. A bad calibration is
    refused, never applied."""
    r = schema.fields(record, where, {"model": str, "features": list, "coef": list, "fitted_range_us": list},
                      {"cache_bytes": (int, 0), "ratio_range": (list, None), "n_networks": (int, None),
                       "cv": (dict, None), "network_ids": (list, None)}, error=error, extra=True)
    schema.choice(r["model"], f"{where}.model", tuple(MODELS), error)
    feats = r["features"]
    for i, name in enumerate(feats):
        schema.choice(name, f"{where}.features[{i}]", FEATURES, error)
    kinds = [f for f in feats if f.endswith("_us") and f != "sum_us"]
    form = tuple("per_kind" if f in kinds else f for f in feats)
    form = tuple(f for i, f in enumerate(form) if f != "per_kind" or form[i - 1:i] != ("per_kind",))
    order = [f"{k}_us" for k in KINDS if f"{k}_us" in kinds]
    if form != MODELS[r["model"]] or kinds != order or len(set(feats)) != len(feats):
        raise error(f"{where}.features: {', '.join(feats)} is not the form of model {r['model']} "
                    f"({', '.join(MODELS[r['model']])})")
    if len(r["coef"]) != len(feats):
        raise error(f"{where}.coef: {len(r['coef'])} coefficients for {len(feats)} features")
    for i, c in enumerate(r["coef"]):
        schema.number(c, f"{where}.coef[{i}]", -1e12, 1e12, error=error)
    schema.number(r["cache_bytes"], f"{where}.cache_bytes", 0, 1 << 50, integer=True, error=error)
    _span(r["fitted_range_us"], f"{where}.fitted_range_us", MIN_US, MAX_US, error)
    if r["ratio_range"] is not None:
        _span(r["ratio_range"], f"{where}.ratio_range", *RATIO_LIMITS, error)
    if r["n_networks"] is not None:
        schema.number(r["n_networks"], f"{where}.n_networks", 1, None, integer=True, error=error)
    for name, value in (r["cv"] or {}).items():  # the held-out errors, shown by `table show`
        if name != "method" and value is not None:
            schema.number(value, f"{where}.cv.{name}", -1e6, 1e6, error=error)
    return r


def _span(value: list, where: str, lo: float, hi: float, error) -> None:
    """[low, high] with lo <= low <= high <= hi."""
    if len(value) != 2:
        raise error(f"{where}: must be [low, high], got {len(value)} values")
    for i, v in enumerate(value):
        schema.number(v, f"{where}[{i}]", lo, hi, error=error)
    if value[0] > value[1]:
        raise error(f"{where}: low {value[0]:g} exceeds high {value[1]:g}")


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
    # Ranks need two distinct values on each side; otherwise they are undefined (null).
    ranked = len(m) > 1 and np.ptp(m) > 0 and np.ptp(p) > 0
    tau = float(stats.kendalltau(m, p).statistic) if ranked else None
    rho = float(stats.spearmanr(m, p).statistic) if ranked else None
    return {
        "n": int(len(m)),
        "within_3_pct": float(np.mean(np.abs(err) <= 3) * 100),
        "within_5_pct": float(np.mean(np.abs(err) <= 5) * 100),
        "within_10_pct": float(np.mean(np.abs(err) <= 10) * 100),
        "mean_abs_pct_error": float(np.mean(np.abs(err))),
        "median_abs_pct_error": float(np.median(np.abs(err))),
        "max_abs_pct_error": float(np.max(np.abs(err))),
        "bias_pct": float(np.mean(err)),
        "kendall_tau": tau,
        "spearman": rho,
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
