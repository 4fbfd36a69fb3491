"""Every command against generated hostile files and option values (hypothesis).

The contract (README, "Exit codes"): a command ends with exit code 2 and at most three lines on
stderr, the last one "latbench: error: ...", and no traceback; or with its documented result
(exit 0, or 3 when some rows or trials failed), every output whole: what it printed is strict
JSON where --json was asked, its files parse, and no temporary *.partial file is left. The
inputs are small valid files (a synthetic table of the tiny space, a network, the space, a
grid, a pool, a finished search, a validation report, a session archive) corrupted by one
generated mutation each: a field replaced by junk or deleted, NaN/Infinity/1e999/a huge number
or deep nesting written in, bytes cut or inserted, the whole file replaced.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latbench.harness import HarnessSettings
from latbench.keysets import grid_specs, sample_specs
from latbench.space import load_space, sample
from latbench.table import FORMAT

#: Few examples each, the same ones every run (CI); HOSTILE_EXAMPLES=200 explores with new ones.
EXPLORE = int(os.environ.get("HOSTILE_EXAMPLES", 0))
FAST = settings(max_examples=EXPLORE or 12, deadline=None, derandomize=not EXPLORE,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REPO = Path(__file__).resolve().parents[1]
TINY = load_space("tiny")
X0 = ",".join(map(str, sample(TINY, 1, 0)[0]))


# -- valid inputs ----------------------------------------------------------------------------------
def synthetic_table() -> list[dict]:
    """A table of the blocks of 8 tiny networks with made-up times (no measuring), calibrated."""
    meta = {"type": "meta", "format": FORMAT, "device": {"kind": "cpu", "name": "synthetic cpu", "threads": 1,
                                                          "cache_bytes": 1 << 25},
            "backend": {"name": "torch", "version": "0", "options": {}}, "precision": "fp32", "batch": 1,
            "protocol": "warm", "harness": HarnessSettings.for_device("cpu", quick=True).as_dict()}
    rows = []
    for spec in sample_specs(TINY, 8, 0) + grid_specs("smoke_grid"):
        us = 5.0 + spec.macs / 2e4
        rows.append({"type": "row", "key": spec.key, "median_us": us, "p10_us": us * 0.98, "p90_us": us * 1.03,
                     "cov": 0.01, "n": 21, "status": "ok", "reason": "", "measured_at": "2026-01-01T00:00:00+00:00"})
    rows[-1] |= {"status": "failed", "median_us": None, "reason": "out of memory"}
    cal = {"type": "calibration", "model": "linear", "features": ["sum_us", "n_blocks", "one"],
           "coef": [1.05, 2.0, 10.0], "cache_bytes": 1 << 25, "n_networks": 6, "fitted_range_us": [100.0, 50000.0],
           "ratio_range": [1.0, 1.2]}
    return [meta] + rows + [cal]


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Valid inputs of every command, built once (the search runs one short trial)."""
    from latbench.cli import main
    from nas.pool import make_pool

    d = tmp_path_factory.mktemp("world")
    (d / "table.jsonl").write_text(jsonl(synthetic_table()))
    (d / "arch.json").write_text(json.dumps(json.loads(_stdout(main, "arch", "decode", X0, "--space", "tiny"))))
    shutil.copy(TINY.source, d / "space.json")
    shutil.copy(REPO / "layer_configs" / "smoke_grid.json", d / "grid.json")
    pool = make_pool(d / "table.jsonl", TINY, 64, 0, [0.5])
    pool.save(d / "pool.npz")
    lo, hi = (float(v) for v in np.quantile(pool.latency_ms, [0.2, 0.9]))
    search = ["search", "--table", str(d / "table.jsonl"), "--space", "tiny", "--pool", str(d / "pool.npz"),
              "--latency-min", f"{lo:.6f}", "--latency-max", f"{hi:.6f}", "--budget", "1", "--epochs", "1",
              "--width-mult", "0.25", "--missing", "estimate", "--method", "random", "--out", str(d / "search")]
    assert _exit(main, *search) == 0
    report = {"table_provenance": "synthetic cpu (cpu), torch 0, fp32, batch 1, protocol warm",
              "rows": [{"name": f"n{i}", "measured_us": 1000.0 + 37 * i, "raw_sum_us": 950.0 + 35 * i,
                        "calibrated_held_out_us": 1001.0 + 36 * i} for i in range(8)],
              "raw_sum": {"within_3_pct": 0.0, "within_10_pct": 100.0, "kendall_tau": 1.0},
              "calibrated_held_out": {"within_3_pct": 100.0, "within_10_pct": 100.0, "kendall_tau": 1.0},
              "calibration": {"model": "linear"}}
    (d / "report.json").write_text(json.dumps(report))
    archive = d / "archive"
    archive.mkdir()
    (archive / "session.json").write_text(json.dumps({"table": "cpu-torch-fp32-b1.jsonl"}))
    shutil.copy(d / "table.jsonl", archive / "cpu-torch-fp32-b1.jsonl")
    (archive / "validation.json").write_text(json.dumps({"tiny": report}))
    return {"dir": d, "search": search}


def _exit(main, *argv) -> int:
    try:
        main(list(argv))
    except SystemExit as e:
        return e.code
    return 0


def _stdout(main, *argv) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert _exit(main, *argv) == 0
    return buf.getvalue()


# -- hostile mutations -----------------------------------------------------------------------------
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(-1e308, 1e308),
                 st.text(max_size=6), st.just([]), st.just({}), st.lists(st.integers(-3, 3), max_size=3))
#: Text no strict JSON reader accepts as a value, written in place of a field's value.
LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 5000, "[" * 3000 + "]" * 3000,
            '{"a":' * 3000 + "1" + "}" * 3000]
WHOLE = [b"", b"\n\n", b"null", b"[]", b"{}", b"\xff\xfe\x00garbage", bytes(range(256)), b"[" * 100000,
         "{\"a\": 1}".encode("utf-16"), b"x" * 1000]


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


@st.composite
def mutated_json(draw, obj) -> bytes:
    """`obj` as JSON with one generated corruption."""
    kind = draw(st.sampled_from(["junk", "junk", "delete", "literal", "cut", "bytes", "whole"]))
    text = json.dumps(obj)
    if kind == "whole":
        return draw(st.sampled_from(WHOLE))
    if kind == "cut":
        return text.encode()[:draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "bytes":
        at = draw(st.integers(0, len(text)))
        return text.encode()[:at] + draw(st.binary(min_size=1, max_size=8)) + text.encode()[at:]
    paths = list(_paths(obj))
    if not paths:
        return draw(st.sampled_from(WHOLE))
    path = draw(st.sampled_from(paths))
    copy = json.loads(text)
    parent = copy
    for p in path[:-1]:
        parent = parent[p]
    if kind == "delete":
        del parent[path[-1]]
        return json.dumps(copy).encode()
    marker = "@@HOSTILE@@"
    parent[path[-1]] = draw(JUNK) if kind == "junk" else marker
    out = json.dumps(copy)
    if kind == "literal":
        out = out.replace(json.dumps(marker), draw(st.sampled_from(LITERALS)))
    return out.encode()


@st.composite
def mutated_jsonl(draw, records) -> bytes:
    """JSON lines with one record corrupted (or the final newline dropped, which must be read)."""
    if draw(st.integers(0, 9)) == 0:
        return jsonl(records).encode()[:-1]
    i = draw(st.integers(0, len(records) - 1))
    line = draw(mutated_json(records[i]))
    return b"".join((json.dumps(r).encode() if j != i else line) + b"\n" for j, r in enumerate(records))


NUMBER_TEXT = st.one_of(st.integers(-(2**65), 2**65).map(str), st.sampled_from(["nan", "inf", "-inf", "1e308", "",
                                                                                "-0", "0x10", "1,5", " 3"]),
                        st.floats(allow_nan=True, allow_infinity=True).map(repr))
#: Numbers no option takes (negative, beyond any limit, not numbers): where a valid value would
#: start real work (--n 3000000 draws three million networks), only these are generated.
BAD_NUMBER = st.one_of(st.integers(-(2**65), -1).map(str), st.integers(2**40, 2**65).map(str),
                       st.sampled_from(["nan", "inf", "-inf", "1e308", "", "0x10", "1,5", "2.5", "ten"]))
HOSTILE_PATHS = ["", ".", "/dev/full", "/dev/null", "/proc/nope/x", "{dir}", "{file}/x", "{dir}/" + "n" * 300]


def output_path(template: str, root: Path) -> str:
    (root / "adir").mkdir(exist_ok=True)
    (root / "afile").write_text("x")
    return template.format(dir=root / "adir", file=root / "afile")


# -- the contract ----------------------------------------------------------------------------------
def run(run_cli, *argv) -> tuple[int, str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(*map(str, argv))
    leaked = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not leaked, f"a RuntimeWarning leaked: {leaked[0].message} ({leaked[0].filename}:{leaked[0].lineno})"
    return code, out, err


def contract(code: int, out: str, err: str, root: Path, ok=None, json_out=False) -> None:
    """Exit 2 with at most three lines and no traceback, or the documented result with every
    output whole."""
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:
        assert 1 <= len(lines) <= 3 and lines[-1].startswith("latbench: error: "), err
    else:
        assert code in (0, 3), (code, err)
        if json_out:
            json.loads(out, parse_constant=_refuse)
        if ok is not None:
            ok(out)
    assert not [p for p in root.rglob("*.partial")], "a temporary file was left behind"


def _refuse(name):
    raise AssertionError(f"stdout is not strict JSON: {name}")


@pytest.fixture
def case(world, monkeypatch):
    """A fresh folder holding copies of the valid inputs; removed afterwards. The commands run in
    the first one, so that a relative path lands there."""
    dirs = []

    def make(**files) -> Path:
        root = Path(tempfile.mkdtemp(dir=world["dir"]))
        dirs.append(root)
        for name in ("table.jsonl", "arch.json", "space.json", "grid.json", "pool.npz", "report.json"):
            shutil.copy(world["dir"] / name, root / name)
        shutil.copytree(world["dir"] / "search", root / "search")
        shutil.copytree(world["dir"] / "archive", root / "archive")
        for name, data in files.items():
            target = root / name.replace("__", "/")
            target.write_bytes(data if isinstance(data, bytes) else data.encode())
        if len(dirs) == 1:
            monkeypatch.chdir(root)
        return root

    yield make
    for root in dirs:
        shutil.rmtree(root, ignore_errors=True)


def positive_prediction(out: str) -> None:
    p = json.loads(out)
    assert math.isfinite(p["latency_ms"]) and p["latency_ms"] > 0 and p["raw_sum_ms"] > 0


def whole_chart(*paths: Path):
    def check(out: str) -> None:
        for p in paths:
            data = p.read_bytes()
            assert data.startswith(b"\x89PNG") if p.suffix == ".png" else b"</svg>" in data
    return check


TABLE = synthetic_table()


# -- info, arch, export ----------------------------------------------------------------------------
@FAST
@given(extra=st.lists(st.sampled_from(["--json", "--bogus", "-x", "--", "--json=1", "extra"]), max_size=2))
def test_info(run_cli, world, extra):
    code, out, err = run(run_cli, "info", *extra)
    contract(code, out, err, world["dir"], json_out="--json" in extra and code == 0)


@FAST
@given(command=st.sampled_from(["show", "decode", "encode"]), data=st.data())
def test_arch_commands(run_cli, case, command, data):
    arch = json.loads((REPO / "layer_configs" / "gpunet-1.json").read_text())
    which = data.draw(st.sampled_from(["arch", "space", "vector", "text"]))
    root = case()
    space = "tiny"
    if which == "arch":
        (root / "arch.json").write_bytes(data.draw(mutated_json(arch)))
        source = str(root / "arch.json")
        space = "gpunet"
    elif which == "space":
        # The tiny space, or FBNet's, whose stages choose among candidates (objects as choices).
        base = data.draw(st.sampled_from([TINY_SPACE, FBNET_SPACE]))
        (root / "space.json").write_bytes(data.draw(mutated_json(json.loads(base))))
        source, space = (X0 if base == TINY_SPACE else FBNET_X0), str(root / "space.json")
    elif which == "vector":
        source = ",".join(data.draw(st.lists(NUMBER_TEXT, min_size=0, max_size=45)))
    else:
        source = data.draw(st.sampled_from(["", " ", ".", "\n", "-", "gpunet-9", "../" * 50, "x" * 5000,
                                            str(root), "/dev/zero", "[1,2", "1," * 41, "timm:", "timm:resnet50",
                                            "timm:../gpunet-1", "timm:" + "x" * 5000, "timm:efficientnet_b0"]))
    code, out, err = run(run_cli, "arch", command, source, "--space", space)
    contract(code, out, err, root, json_out=command == "decode")


TINY_SPACE = (REPO / "layer_configs" / "tiny_space.json").read_text()
FBNET_SPACE = (REPO / "layer_configs" / "fbnet_space.json").read_text()
FBNET_X0 = ",".join(map(str, sample(load_space("fbnet"), 1, 0)[0]))


@FAST
@given(extra=st.lists(st.sampled_from(["--timm", "--json", "--bogus", "--timm=2", "extra"]), max_size=3))
def test_arch_list(run_cli, world, extra):
    code, out, err = run(run_cli, "arch", "list", *extra)
    contract(code, out, err, world["dir"], json_out="--json" in extra and code == 0)


@FAST
@given(data=st.data())
def test_export(run_cli, case, data):
    root = case()
    key = data.draw(st.sampled_from(["head-i3-o8-h32-w32-k3-s2-swish", "conv-i8-o8-h16-w16-k3-s1-relu"]))
    tokens = key.split("-")
    if data.draw(st.booleans()):
        tokens[data.draw(st.integers(0, len(tokens) - 1))] = data.draw(
            st.sampled_from(["", "i0", "o99999999", "k4", "s3", "h0", "zz", "e1e999", "i-1", "k" + "9" * 30]))
    out = data.draw(st.sampled_from(["{root}/m.onnx", "{root}/sub/m.onnx"] + HOSTILE_PATHS))
    out = output_path(out.replace("{root}", str(root)), root)
    extra = data.draw(st.lists(st.sampled_from([["--batch", "0"], ["--opset", "16"], ["--opset", "99"],
                                                ["--precision", "int4"], ["--no-check"]]), max_size=2))
    code, stdout, err = run(run_cli, "export", "-".join(tokens), "--onnx", out, *sum(extra, []))

    def whole(_):
        import onnx

        onnx.checker.check_model(onnx.load(out))
    contract(code, stdout, err, root, ok=whole)


# -- build-table: every bad input is refused before measuring --------------------------------------
BUILD_OPTIONS = {"--threads": BAD_NUMBER, "--n": BAD_NUMBER, "--seed": BAD_NUMBER, "--batch": BAD_NUMBER,
                 "--opt-level": BAD_NUMBER, "--workspace-mb": BAD_NUMBER, "--sample": BAD_NUMBER,
                 "--precision": st.sampled_from(["int4", "fp64", ""]), "--protocol": st.sampled_from(["hot", ""]),
                 "--backend": st.sampled_from(["tvm", "tensorrt", ""]), "--device": st.sampled_from(["tpu", "cuda"]),
                 "--gpu": st.sampled_from(["a100", ""]), "--ray": st.sampled_from(["", "nowhere:1", "x"])}


@FAST
@given(data=st.data())
def test_build_table(run_cli, case, data):
    root = case()
    which = data.draw(st.sampled_from(["option", "grid", "space", "out", "table"]))
    args = ["build-table", "--device", "cpu", "--quick", "--grid", str(root / "grid.json"), "--out",
            str(root / "t.jsonl")]
    if which == "option":
        name = data.draw(st.sampled_from(sorted(BUILD_OPTIONS)))
        args += [name, data.draw(BUILD_OPTIONS[name])]
    elif which == "grid":
        grid = json.loads((root / "grid.json").read_text())
        (root / "grid.json").write_bytes(data.draw(mutated_json(grid)))
    elif which == "space":
        (root / "space.json").write_bytes(data.draw(mutated_json(json.loads(TINY_SPACE))))
        args += ["--space", str(root / "space.json"), "--n", "1"]
    elif which == "out":
        args[-1] = output_path(data.draw(st.sampled_from(HOSTILE_PATHS)), root)
    else:  # an existing table to resume: damaged, or of other settings
        (root / "t.jsonl").write_bytes(data.draw(mutated_jsonl(TABLE)))
    before = (root / "t.jsonl").read_bytes() if (root / "t.jsonl").exists() else None
    code, out, err = run(run_cli, *args)
    contract(code, out, err, root)
    if code == 2 and before is not None:
        assert (root / "t.jsonl").read_bytes() == before  # a refused run leaves the table as it was


# -- tables: show, export, merge, predict, sample --------------------------------------------------
@FAST
@given(data=st.data(), command=st.sampled_from(["show", "export", "merge", "predict", "sample"]))
def test_table_readers(run_cli, case, command, data):
    root = case(**{"table.jsonl": data.draw(mutated_jsonl(TABLE))})
    t = str(root / "table.jsonl")
    if command == "show":
        argv, ok = ["table", "show", "--table", t, "--json"], None
    elif command == "export":
        fmt = data.draw(st.sampled_from(["--csv", "--parquet"]))
        argv = ["table", "export", "--table", t, fmt, str(root / "o.out")]

        def ok(_):
            import pandas as pd

            df = pd.read_csv(root / "o.out") if fmt == "--csv" else pd.read_parquet(root / "o.out")
            assert len(df) > 0
    elif command == "merge":
        shutil.copy(root / "table.jsonl", root / "b.jsonl")
        (root / "b.jsonl").write_text(jsonl(TABLE))
        argv = ["table", "merge", "--table", t, "--table", str(root / "b.jsonl"), "--out", str(root / "m.jsonl")]

        def ok(_):
            from latbench.table import load_table

            assert load_table(root / "m.jsonl").rows
    elif command == "predict":
        argv, ok = ["predict", X0, "--table", t, "--space", "tiny", "--json", "--missing", "estimate"], \
            positive_prediction
    else:
        argv = ["sample", "--table", t, "--space", "tiny", "--n", "16", "--json", "--out", str(root / "p.npz")]

        def ok(out):
            from nas.pool import load_pool

            assert len(load_pool(root / "p.npz")) == 16 and json.loads(out)["latency_ms"]["min"] > 0
    code, out, err = run(run_cli, *argv)
    contract(code, out, err, root, ok=ok, json_out="--json" in argv)


def test_a_table_without_its_final_newline_is_read_whole(run_cli, case):
    """The last line lacks its newline (an editor dropped it): it is data, here the calibration."""
    root = case(**{"table.jsonl": jsonl(TABLE)[:-1]})
    code, out, err = run(run_cli, "predict", X0, "--table", root / "table.jsonl", "--space", "tiny", "--json")
    assert code == 0 and json.loads(out)["calibrated"], err


@FAST
@given(data=st.data())
def test_table_options(run_cli, case, data):
    root = case()
    t = str(root / "table.jsonl")
    argv = data.draw(st.sampled_from([
        ["table", "show", "--table", t, "--failures", data.draw(NUMBER_TEXT)],
        ["table", "export", "--table", t, "--csv", output_path(data.draw(st.sampled_from(HOSTILE_PATHS)), root)],
        ["table", "export", "--table", t, "--csv", str(root / "x"), "--parquet", str(root / "x")],
        ["table", "export", "--table", t, "--csv", t],
        ["table", "merge", "--table", t, "--table", t, "--out", output_path(
            data.draw(st.sampled_from(HOSTILE_PATHS + [t])), root)],
        ["table", "show", "--table", output_path(data.draw(st.sampled_from(HOSTILE_PATHS)), root)],
        ["predict", X0, "--table", t, "--space", "tiny", "--precision", data.draw(st.sampled_from(["int4", "fp16"]))],
        ["predict", X0, "--table", t, "--space", "tiny", "--gpu", "a100"],
        ["sample", "--table", t, "--space", "tiny", "--n", data.draw(BAD_NUMBER)],
        ["sample", "--table", t, "--space", "tiny", "--n", "16", "--groups", data.draw(
            st.one_of(st.text(max_size=12), st.sampled_from(["nan,inf", "-1,2", "1,1", "1e308", "0"])))],
        ["sample", "--table", t, "--space", "tiny", "--n", "16", "--seed", data.draw(NUMBER_TEXT)],
    ]))
    before = Path(t).read_bytes()
    code, out, err = run(run_cli, *argv)
    contract(code, out, err, root)
    assert Path(t).read_bytes() == before  # an input is never written over


# -- validate: refused before measuring ------------------------------------------------------------
@FAST
@given(data=st.data())
def test_validate(run_cli, case, data):
    root = case()
    t = root / "table.jsonl"
    which = data.draw(st.sampled_from(["table", "option", "report", "networks"]))
    argv = ["validate", "--table", str(t), "--space", "tiny", "--n", "2"]
    if which == "table":
        t.write_bytes(data.draw(mutated_jsonl(TABLE)))
    elif which == "option":
        argv += [data.draw(st.sampled_from(["--n", "--seed", "--time-limit"])), data.draw(NUMBER_TEXT)]
    elif which == "report":
        argv += [data.draw(st.sampled_from(["--report", "--plot"])),
                 output_path(data.draw(st.sampled_from(HOSTILE_PATHS + [str(t), "{dir}/v.pdf"])), root)]
    else:
        (root / "table.networks.jsonl").write_bytes(data.draw(st.sampled_from(WHOLE)))
    before = t.read_bytes()
    code, out, err = run(run_cli, *argv)
    contract(code, out, err, root)
    assert code == 2  # the synthetic table was measured on no machine: nothing is measured here
    assert t.read_bytes() == before


# -- pools, searches, reports, charts --------------------------------------------------------------
def pool_arrays(world) -> dict:
    with np.load(world["dir"] / "pool.npz") as f:
        return {k: f[k] for k in f.files}


@st.composite
def mutated_pool(draw, arrays: dict) -> bytes:
    import io

    a = dict(arrays)
    name = draw(st.sampled_from(sorted(a)))
    kind = draw(st.sampled_from(["drop", "nan", "negative", "shape", "dtype", "meta", "bytes"]))
    if kind == "bytes":
        return draw(st.sampled_from(WHOLE))
    if kind == "drop":
        del a[name]
    elif name == "meta" or kind == "meta":
        a["meta"] = np.array(draw(mutated_json(json.loads(str(arrays["meta"])))).decode("utf-8", "replace"))
    elif kind == "nan":
        a[name] = np.full(a[name].shape, np.nan)
    elif kind == "negative":
        a[name] = -a[name] - 1
    elif kind == "shape":
        a[name] = a[name][:3]
    else:
        a[name] = a[name].astype(str)
    buf = io.BytesIO()
    np.savez(buf, **a)
    return buf.getvalue()


@FAST
@given(data=st.data())
def test_plot_groups_and_search_with_a_hostile_pool(run_cli, world, case, data):
    root = case(**{"pool.npz": data.draw(mutated_pool(pool_arrays(world)))})
    if data.draw(st.booleans()):
        code, out, err = run(run_cli, "plot", "groups", "--pool", root / "pool.npz", "--out", root / "g.png")
        contract(code, out, err, root, ok=whole_chart(root / "g.png", root / "g.svg"))
    else:  # resuming the finished search reads the pool, then only summarises
        argv = [a.replace(str(world["dir"]), str(root)) for a in world["search"]]
        code, out, err = run(run_cli, *argv, "--resume", "--json")
        contract(code, out, err, root, json_out=True)


@FAST
@given(data=st.data())
def test_search_with_hostile_results_or_options(run_cli, world, case, data):
    records = [json.loads(line) for line in (world["dir"] / "search" / "results.jsonl").read_text().splitlines()]
    root = case(**{"search__results.jsonl": data.draw(mutated_jsonl(records))})
    argv = [a.replace(str(world["dir"]), str(root)) for a in world["search"]] + ["--resume", "--json"]
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(["--latency-max", "--latency-min", "--parallel", "--budget", "--epochs",
                                          "--width-mult", "--train-fraction", "--top-k", "--leaf-size", "--n-init",
                                          "--proxy-resolution", "--n", "--seed"]))
        argv += [name, data.draw(NUMBER_TEXT)]

    def whole(out):
        summary = json.loads((root / "search" / "summary.json").read_text())
        assert summary["trials"] == 1
        if summary.get("best"):
            import onnx

            onnx.load(str(root / "search" / "best.onnx"))
    code, out, err = run(run_cli, *argv)
    contract(code, out, err, root, ok=whole, json_out=True)


@FAST
@given(data=st.data())
def test_plot_pareto(run_cli, world, case, data):
    records = [json.loads(line) for line in (world["dir"] / "search" / "results.jsonl").read_text().splitlines()]
    root = case(**{"search__results.jsonl": data.draw(mutated_jsonl(records))})
    out = root / "pareto.png"
    code, stdout, err = run(run_cli, "plot", "pareto", "--results", root / "search", "--table", root / "table.jsonl",
                            "--out", out)
    contract(code, stdout, err, root, ok=whole_chart(out, out.with_suffix(".svg")))


@FAST
@given(data=st.data())
def test_plot_validate(run_cli, case, data):
    report = json.loads(case().joinpath("report.json").read_text())
    root = case(**{"report.json": data.draw(mutated_json(report))})
    out = root / "v.png"
    if data.draw(st.integers(0, 3)) == 0:
        out = Path(output_path(data.draw(st.sampled_from(HOSTILE_PATHS + ["{dir}/v.pdf"])), root))
    code, stdout, err = run(run_cli, "plot", "validate", "--report", root / "report.json", "--out", out)
    contract(code, stdout, err, root, ok=lambda o: whole_chart(out, out.with_suffix(".svg"))(o))


@FAST
@given(data=st.data(), command=st.sampled_from(["factors", "compare"]))
def test_plot_factors_and_compare(run_cli, case, data, command):
    root = case(**{"table.jsonl": data.draw(mutated_jsonl(TABLE))})
    t = root / "table.jsonl"
    if command == "factors":
        (root / "grid.json").write_text(json.dumps({"base": {"kind": "conv", "in_channels": 8, "out_channels": 8,
                                                             "height": 16, "width": 16, "kernel": 3, "act": "relu"},
                                                    "vary": {"kernel": [3, 5]}}))
        code, out, err = run(run_cli, "plot", "factors", "--table", t, "--grid", root / "grid.json", "--out",
                             root / "charts")
        contract(code, out, err, root, ok=whole_chart(root / "charts" / "factors.png"))
    else:
        (root / "b.jsonl").write_text(jsonl(TABLE))
        code, out, err = run(run_cli, "plot", "compare", "--table", t, "--table", root / "b.jsonl", "--out",
                             root / "c.png")
        contract(code, out, err, root, ok=whole_chart(root / "c.png", root / "c.svg"))


# -- session ship, session run, demo ---------------------------------------------------------------
@FAST
@given(data=st.data())
def test_session_ship(run_cli, case, data, monkeypatch):
    import latbench.session

    root = case()
    repo = root / "repo"
    (repo / "tables").mkdir(parents=True)
    monkeypatch.setattr(latbench.session, "repo_root", lambda: repo)
    archive = root / "archive"
    name = data.draw(st.sampled_from(["session.json", "cpu-torch-fp32-b1.jsonl", "validation.json"]))
    if name == "cpu-torch-fp32-b1.jsonl":
        (archive / name).write_bytes(data.draw(mutated_jsonl(TABLE)))
    else:
        (archive / name).write_bytes(data.draw(mutated_json(json.loads((archive / name).read_text()))))

    def whole(_):
        from latbench.table import load_table

        load_table(repo / "tables" / "cpu-torch-fp32-b1.jsonl")
    code, out, err = run(run_cli, "session", "ship", archive)
    contract(code, out, err, root, ok=whole)
    if code == 2:
        assert not list((repo / "tables").iterdir())  # checked before anything was copied


@FAST
@given(data=st.data())
def test_session_run_and_demo_options(run_cli, case, data):
    root = case()
    argv = data.draw(st.sampled_from([
        ["session", "run", "--budget", data.draw(NUMBER_TEXT), "--out", str(root / "afile")],
        ["session", "run", "--out", output_path(data.draw(st.sampled_from(["", "{file}", "{file}/x"])), root),
         "--rehearse", "--budget", "10"],
        ["demo", "--budget", data.draw(NUMBER_TEXT), "--out", str(root / "afile")],
        ["demo", "--out", output_path(data.draw(st.sampled_from(["", "{file}", "{file}/x"])), root)],
    ]))
    code, out, err = run(run_cli, *argv)
    contract(code, out, err, root)
    assert code == 2  # every one of these is refused before any work


def test_every_command_is_driven_here():
    """A new command must join these tests: the commands `latbench --help` lists, and theirs."""
    from latbench.cli import _register, app

    _register()
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    for group in app.registered_groups:
        names |= {f"{group.name} {c.name}" for c in group.typer_instance.registered_commands}
    driven = {"info", "arch list", "arch show", "arch decode", "arch encode", "export", "build-table", "table show",
              "table export", "table merge", "predict", "validate", "sample", "search", "plot factors",
              "plot groups", "plot pareto", "plot validate", "plot compare", "session ship", "session run", "demo"}
    assert names == driven
