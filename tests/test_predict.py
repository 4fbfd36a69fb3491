"""Prediction: exact vectorised screening, the predict and validate commands, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latbench import Predictor, load_arch, load_table
from latbench.cli import main
from latbench.errors import MissingKeysError
from latbench.space import load_space

TINY = load_space("tiny")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A quick CPU table: GPUNet-1's blocks and those of 16 tiny networks."""
    path = tmp_path_factory.mktemp("predict") / "cpu.jsonl"
    try:
        main(["build-table", "--device", "cpu", "--archs", "gpunet-1", "--sample", "16", "--sample-space",
              "tiny", "--out", str(path), "--quick"])
    except SystemExit as e:
        assert e.code == 0
    return path


def test_vectorised_and_per_network_predictions_agree_exactly(table):
    pred = Predictor(load_table(table), TINY)
    X = TINY.random(300, rng=4)
    lat, frac = pred.screen(X)
    one = np.array([pred.predict(TINY.decode(x), missing="estimate").latency_ms for x in X])
    assert np.array_equal(lat, one)
    assert ((frac >= 0) & (frac <= 1)).all() and (frac < 1).any()  # some keys are estimated
    assert np.array_equal(pred.predict_encoded(X), lat)


def test_missing_keys_are_an_error_unless_estimated(table):
    pred = Predictor(load_table(table))
    with pytest.raises(MissingKeysError) as err:
        pred.predict(load_arch("gpunet-2"))
    assert err.value.keys and all(k.count("-") >= 7 for k in err.value.keys)
    p = pred.predict(load_arch("gpunet-2"), missing="estimate")
    assert p.coverage < 1 and p.missing and p.latency_ms > 0 and p.measured_fraction < 1
    assert pred.estimator.cv["median_abs_pct_error"] > 0  # the estimate's error is measured


def test_predict_json_gives_total_raw_sum_breakdown_and_coverage(run_cli, table):
    code, out, err = run_cli("predict", "layer_configs/gpunet-1.json", "--table", str(table), "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["coverage"] == 1.0 and obj["measured_fraction"] == 1.0
    assert obj["raw_sum_ms"] == pytest.approx(sum(b["us"] for b in obj["blocks"]) / 1000)
    assert len(obj["blocks"]) == 16 and [s["stage"] for s in obj["stages"]] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert "provenance" in obj and obj["units"].startswith("milliseconds")


def test_predict_errors_and_warnings(run_cli, table, tmp_path):
    code, _, err = run_cli("predict", "gpunet-2", "--table", str(table))
    assert code == 2 and "lacks" in err and "build-table --archs gpunet-2" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("predict", "gpunet-1", "--table", str(table), "--gpu", "a100")
    assert code == 2 and "--gpu a100 but" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("predict", "gpunet-1", "--table", str(table), "--precision", "fp16")
    assert code == 2 and "holds fp32" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("predict", "gpunet-1", "--table", str(table), "--precision", "int4")
    assert code == 2 and "'int4' is not one of" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{\n")
    code, _, err = run_cli("predict", "gpunet-1", "--table", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("predict", "gpunet-1", "--table", str(tmp_path / "none.jsonl"))
    assert code == 2 and "no such table" in err


def test_validate_fits_stores_and_then_tests_the_calibration(run_cli, table, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = run_cli("validate", "--table", str(table), "--n", "8", "--space", "tiny", "--seed", "3",
                             "--report", str(report), "--plot", str(tmp_path / "v.png"))
    assert code == 0, err
    rep = json.loads(report.read_text())
    assert rep["networks"] == 8 and rep["calibrated_held_out"]["n"] == 8
    assert len(rep["rows"]) == 8 and all(r["measured_us"] > 0 for r in rep["rows"])
    assert (tmp_path / "v.png").is_file() and (tmp_path / "v.svg").is_file()
    assert load_table(table).calibration["model"] == rep["calibration"]["model"]
    assert "Kendall tau" in out and "within +-10 %" in out
    code, out, err = run_cli("validate", "--table", str(table), "--n", "0", "--archs", "gpunet-1",
                             "--no-store", "--report", str(tmp_path / "g.json"))
    assert code == 0, err
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["calibration"] is None and g["stored_calibration"]["n"] == 1  # compared, not refitted
    # A calibrated table predicts with its calibration and shows the raw sum beside it.
    p = Predictor(load_table(table)).predict(load_arch("gpunet-1"))
    assert p.calibrated and p.latency_ms != p.raw_sum_ms
