"""build-table over Ray: a local Ray instance on the CPU builds the same table as a local run."""

from __future__ import annotations

import pytest

from latbench.distributed import check_same
from latbench.errors import LatbenchError
from latbench.table import load_table

GRID = "layer_configs/smoke_grid.json"


@pytest.mark.ray
@pytest.mark.slow
def test_ray_builds_the_same_table(run_cli, tmp_path):
    import ray

    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    base = ("build-table", "--device", "cpu", "--backend", "torch", "--grid", GRID, "--quick", "--threads", "1")
    assert run_cli(*base, "--out", str(local))[0] == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code, _, err = run_cli(*base, "--out", str(remote), "--ray", "auto")
    finally:
        ray.shutdown()
    assert code == 0, err
    a, b = load_table(local), load_table(remote)
    assert set(a.rows) == set(b.rows) and all(r["status"] == "ok" for r in b.rows.values())
    assert a.meta["device"] == b.meta["device"] and a.meta["backend"] == b.meta["backend"]


def test_workers_must_agree():
    meta = {"device": {"kind": "cuda", "name": "NVIDIA A100", "driver": "550"}, "backend": {"name": "torch"},
            "precision": "fp16", "batch": 1}
    assert check_same([meta, dict(meta)]) == meta
    other = meta | {"device": meta["device"] | {"name": "NVIDIA H100"}}
    with pytest.raises(LatbenchError, match="worker 1 differs"):
        check_same([meta, other])
