"""Validation: measure whole networks with the table's own backend and harness, compare with
the sum of their blocks, fit the calibration, and report held-out errors.

Whole-network measurements are kept beside the table (TABLE.networks.jsonl, append-only), so a
validation that stops half-way resumes without re-measuring, and later fits reuse them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from latbench import backends, env, schema
from latbench.arch import Arch
from latbench.arch_io import arch_to_json
from latbench.build import build_table, out_of_time
from latbench.calibration import RATIO_LIMITS, apply_bounded, error_report, fit_calibration, network_features
from latbench.errors import LatbenchError
from latbench.harness import HarnessSettings
from latbench.jsonlog import JsonLog
from latbench.predictor import Predictor
from latbench.progress import Progress
from latbench.provenance import backend_for_table
from latbench.rows import failure_reason, measure_quietly, monitor_for, row_facts
from latbench.table import STATUSES, Table, append_calibration, check_times, load_table, networks_path, now


#: Fewer networks than this are compared, not fitted (leave-one-out needs a few to spare).
MIN_FIT_NETWORKS = 6


def network_id(arch: Arch) -> str:
    """A stable identity of a network: hash of its resolution and block keys."""
    text = f"{arch.resolution}|" + "|".join(arch.keys)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def networks_log(table_path: Path) -> JsonLog:
    return JsonLog(networks_path(table_path), "networks log")


def read_networks(log: JsonLog) -> list[dict]:
    """The records of a networks log, each checked: a network id and a status; an ok one with
    times as a table row has them (latbench.table.check_times) and a CoV >= 0 (LatbenchError
    naming the line otherwise)."""
    out = []
    for line, rec in log.read_numbered(from_start=True):
        where = f"{log.path}: line {line}"
        schema.fields(rec, where, {"network_id": str, "status": str}, extra=True)
        schema.choice(rec["status"], f"{where}: status", STATUSES)
        if rec["status"] == "ok":
            check_times(rec, where, LatbenchError, optional_quantiles=True)
            schema.number(rec.get("cov"), f"{where}: cov", 0.0, 1000.0)
        out.append(rec)
    return out


def whole_network_backend(be):
    """Whole networks are timed as deployed, replayed back to back (trtexec's way): cache
    protocol warm, whatever protocol the table's blocks were timed with."""
    if be.config.protocol == "warm":
        return be
    warm = backends.create(be.name, replace(be.config, protocol="warm"))
    if be.attached_table is not None:  # share the table's caches (TensorRT: its timing cache)
        warm.attach_table(be.attached_table)
    return warm


@dataclass
class NetworkMeasurement:
    name: str
    median_us: float
    cov: float
    record: dict
    arch: Arch | None = None


def fill_missing(archs: list[Arch], table_path: Path, be, settings, progress=True) -> int:
    """Measure the blocks the networks need that the table lacks; returns how many."""
    table = load_table(table_path)
    specs = {b.key: b for a in archs for b in a.blocks if b.key not in table.ok()}
    if specs:
        build_table(list(specs.values()), table_path, be, settings, retry_failed=True, progress=progress)
    return len(specs)


@dataclass
class Coverage:
    """Which networks have every block measured (`ready`), which cannot (`skipped`, with the
    reason), how many keys were added, and whether the deadline stopped the filling."""

    ready: list
    skipped: list
    added: int
    cut: bool
    s_per_key: float | None


def fill_networks(archs: list[Arch], table_path: Path, be, settings, *, progress: bool = True,
                  deadline: float | None = None, reserve_s=lambda n: 0.0) -> Coverage:
    """Measure the networks' missing blocks network by network, so that when time runs out every
    network filled so far can still be measured end to end.

    A network is started only if its keys (at the mean cost per key so far) plus `reserve_s(n)`
    (seconds to keep for measuring the n networks then ready) end before `deadline`.
    """
    ok = set(load_table(table_path).ok())
    ready, skipped, added, costs, cut = [], [], 0, [], False
    with Progress(len(archs), "blocks of the networks", enabled=progress) as bar:
        for arch in archs:
            missing = list({b.key: b for b in arch.blocks if b.key not in ok}.values())
            per_key = float(np.mean(costs)) if costs else 0.0
            if out_of_time(deadline, len(missing) * per_key + reserve_s(len(ready) + 1)):
                cut = True
                break
            if missing:
                bar.describe(f"{arch.name}: {len(missing)} blocks")
                stop = None if deadline is None else deadline - reserve_s(len(ready) + 1)
                summary = build_table(missing, table_path, be, settings, retry_failed=True,
                                      progress=False, deadline=stop)
                costs += summary.seconds
                added += summary.measured + summary.failed
                ok = set(load_table(table_path).ok())
                if summary.left:
                    cut = True
                    break
            failed = sorted({b.key for b in arch.blocks} - ok)
            if failed:
                skipped.append({"name": arch.name, "reason": f"{len(failed)} blocks failed to measure "
                                f"(e.g. {failed[0]}; see latbench table show {table_path})"})
            else:
                ready.append(arch)
            bar.advance()
    return Coverage(ready, skipped, added, cut, float(np.mean(costs)) if costs else None)


def measure_networks(archs: list[Arch], table_path: Path, be, settings: HarnessSettings,
                     progress: bool = True, deadline: float | None = None,
                     network_s: float = 0.0) -> list[NetworkMeasurement]:
    """End-to-end latency of each network (cached in TABLE.networks.jsonl); networks already
    measured are read back. A network that fails to prepare or run is logged as failed and left
    out; no network is started that would, at `network_s` seconds each, end after `deadline`."""
    log = networks_log(table_path)
    known = {r["network_id"]: r for r in read_networks(log) if r["status"] == "ok"}
    monitor = monitor_for(be.config)
    facts = row_facts(be.config)
    out = []
    todo = [a for a in archs if network_id(a) not in known]
    with Progress(len(todo), "whole networks", enabled=progress) as bar:
        for arch in archs:
            nid = network_id(arch)
            if nid not in known:
                if out_of_time(deadline, network_s):
                    break
                bar.describe(arch.name)
                rec = {"network_id": nid, "name": arch.name, "arch": arch_to_json(arch),
                       "measured_at": now(), **facts}
                try:
                    with be.prepare(arch) as exe:
                        m, extras = measure_quietly(exe, settings, monitor)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as err:  # noqa: BLE001 - one network's failure is recorded, not fatal
                    log.append([rec | {"status": "failed", "reason": failure_reason(err)}])
                    bar.advance()
                    continue
                rec |= {"status": "ok", "median_us": m.median_us, "p10_us": m.p10_us, "p90_us": m.p90_us,
                        "cov": m.cov, "n": m.n, "unroll": m.unroll, **extras}
                log.append([rec])
                known[nid] = rec
                bar.advance()
            r = known[nid]
            out.append(NetworkMeasurement(arch.name, r["median_us"], r["cov"], r, arch))
    return out


def validate(table_path: Path, archs: list[Arch], *, store: bool = True, progress: bool = True,
             repeat_noise: int = 5, deadline: float | None = None,
             network_s: float | None = None) -> dict:
    """Measure `archs` end to end, compare with raw sums, fit and store the calibration.

    Blocks are filled network by network, then the networks are measured; with a `deadline`
    (time.monotonic() seconds) only as many networks as fit are validated, `network_s` being the
    expected seconds per whole-network measurement (default: estimated from the harness
    settings). `repeat_noise` networks are measured a second time (fresh preparation) to report
    the run-to-run noise of whole-network measurements on this machine.
    """
    table = load_table(table_path)
    be = backend_for_table(table)
    settings = HarnessSettings.from_dict(table.meta["harness"])
    t_net = network_s if network_s is not None else network_seconds(settings)
    noise_n = min(repeat_noise, len(archs))
    coverage = fill_networks(archs, Path(table_path), be, settings, progress=progress, deadline=deadline,
                             reserve_s=lambda n: (n + min(noise_n, n)) * t_net)
    if not coverage.ready:
        why = "no time was left to measure their blocks" if coverage.cut else \
            (coverage.skipped[0]["reason"] if coverage.skipped else "no networks given")
        raise LatbenchError(f"{table_path}: no network could be validated: {why}")
    whole = whole_network_backend(be)
    nets = measure_networks(coverage.ready, Path(table_path), whole, settings, progress, deadline, t_net)
    if not nets:
        raise LatbenchError(f"{table_path}: no network could be measured end to end "
                            "(see TABLE.networks.jsonl for the failures)")
    requested, archs = len(archs), [n.arch for n in nets]
    table = load_table(table_path)
    raw = Predictor(Table(table.path, table.meta, table.rows, None))
    aggs = [raw.aggregates(a) for a in archs]
    cat = lambda k: np.concatenate([g[k] for g in aggs])  # noqa: E731
    kind_ns = {k: np.concatenate([g["kind_ns"][k] for g in aggs]) for k in aggs[0]["kind_ns"]}
    cache = raw.cache_bytes
    feats = network_features(cat("total_ns"), cat("n_blocks"), kind_ns, cat("weight_bytes"), cache,
                             cat("traffic_bytes"))
    measured = np.array([n.median_us for n in nets])
    check_plausible(nets, feats["sum_us"], networks_path(table_path))
    rows = [{"name": n.name, "measured_us": n.median_us, "cov": n.cov, "raw_sum_us": float(s),
             "n_blocks": int(nb)} for n, s, nb in zip(nets, feats["sum_us"], feats["n_blocks"])]
    noise_archs = archs[:noise_n] if not out_of_time(deadline, noise_n * t_net) else []
    report = {
        "table": str(table_path), "table_provenance": table.describe(), "device": table.meta["device"],
        "backend": table.meta["backend"], "precision": table.meta["precision"], "batch": table.meta["batch"],
        "protocol": table.meta.get("protocol"), "networks": len(nets), "networks_requested": requested,
        "networks_skipped": coverage.skipped, "cut_by_deadline": coverage.cut or len(nets) < len(coverage.ready),
        "blocks_added": coverage.added, "s_per_key": coverage.s_per_key,
        "raw_sum": error_report(measured, feats["sum_us"]),
        "calibrated_held_out": None, "calibration": None,
        "noise": measurement_noise(noise_archs, whole, settings, measured[:len(noise_archs)]),
        "rows": rows, "machine": env.library_versions(), "validated_at": now(),
        "units": "microseconds per forward pass of one batch; errors in percent of the measured value",
    }
    ids = [network_id(a) for a in archs]
    fitted_on = set((table.calibration or {}).get("network_ids", []))
    fresh = np.array([i not in fitted_on for i in ids])
    if table.calibration and fresh.any():  # the stored calibration, on networks it was not fit on
        stored, _ = apply_bounded(table.calibration, feats)  # what `predict` gives a user
        report["stored_calibration"] = (error_report(measured[fresh], stored[fresh])
                                        | {"model": table.calibration["model"]})
        for r, s, f in zip(rows, stored, fresh):
            if f:
                r["stored_calibrated_us"] = float(s)
    if len(archs) >= MIN_FIT_NETWORKS:
        record, fits = fit_calibration(feats, measured, cache)
        record["network_ids"] = ids
        held_out = fits["candidates"][record["model"]]["held_out_us"]
        report |= {"calibrated_held_out": error_report(measured, held_out), "calibration": record,
                   "candidates": {k: v["loo"] for k, v in fits["candidates"].items()}}
        for r, h in zip(rows, held_out):
            r["calibrated_held_out_us"] = float(h)
        if store:
            append_calibration(table_path, record)
    return report


def check_plausible(nets: list, sums_us, log_path: Path) -> None:
    """Refuse whole-network times that no network of these blocks can take: a network runs in
    RATIO_LIMITS (0.2-5x) of the sum of its blocks' times, or the networks log (or the table) is
    damaged, and a calibration fitted on it would be absurd."""
    lo, hi = RATIO_LIMITS
    for n, s in zip(nets, sums_us):
        if not lo <= n.median_us / s <= hi:
            raise LatbenchError(f"{log_path}: {n.name} measured {n.median_us:.4g} us, {n.median_us / s:.3g}x the sum "
                                f"of its blocks ({s:.4g} us; a network takes {lo:g}-{hi:g}x): the networks log or the "
                                "table is damaged; remove that network's line to measure it again")


def network_seconds(settings: HarnessSettings) -> float:
    """A rough cost of one whole-network measurement before any was timed: preparation plus the
    sampled time of up to `max_attempts` attempts (seconds)."""
    return 0.5 + settings.warmup_s + settings.max_attempts * max(settings.min_time_s,
                                                                  settings.min_samples * settings.sample_s)


def measurement_noise(archs, be, settings, first_us) -> dict:
    """Relative difference between two independent measurements of the same networks."""
    if not archs:
        return {}
    again, monitor = [], monitor_for(be.config)
    for a in archs:
        with be.prepare(a) as exe:
            again.append(measure_quietly(exe, settings, monitor)[0].median_us)
    diff = np.abs(np.array(again) / np.asarray(first_us) - 1) * 100
    return {"networks": len(archs), "median_abs_pct_diff": float(np.median(diff)),
            "max_abs_pct_diff": float(np.max(diff))}


__all__ = ["validate", "fill_missing", "fill_networks", "measure_networks", "network_id"]
