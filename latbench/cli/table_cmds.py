"""`latbench build-table` and `latbench table show|export|merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.table import Table as RichTable
from rich.text import Text

from latbench.cli import EXIT_SOME_FAILED, app
from latbench.cli.options import (MAX_NETWORKS, ArchsOpt, BackendOpt, BatchOpt, CudnnOpt, Device, DeviceOpt,
                                  GpuOpt, JsonOpt, MeasureOptions, OptLevelOpt, PrecisionOpt, ProtocolOpt,
                                  SeedOpt, SpaceOpt, ThreadsOpt, WorkspaceOpt, emit_json, resolve_measurer, path_value,
                                  text_value)
from latbench.console import console
from latbench.errors import LatbenchError

table_app = typer.Typer(help="Inspect, export and merge latency tables.", no_args_is_help=True)
app.add_typer(table_app, name="table")


def collect_specs(space_name: str, all_keys: bool, archs: List[str], n: int, seed: int,
                  grids: List[str]) -> tuple[list, list[str]]:
    """The union of the key sets, and one line per set saying what it added."""
    from latbench import keysets
    from latbench.space import load_space

    specs, notes = [], []
    space = load_space(space_name)
    if all_keys:
        s = keysets.space_specs(space)
        notes.append(f"--all-keys: {len(s):,} keys reachable in the {space.name} space")
        specs += s
    if archs:
        s = keysets.arch_specs(archs, space)
        notes.append(f"--archs: {len(s)} keys needed by {len(archs)} network(s)")
        specs += s
    if n:
        s = keysets.sample_specs(space, n, seed)
        notes.append(f"--n {n}: {len(s)} keys of {n} Sobol networks of {space.name} (seed {seed})")
        specs += s
    for g in grids:
        s = keysets.grid_specs(g)
        notes.append(f"--grid {g}: {len(s)} keys")
        specs += s
    if not specs:
        raise LatbenchError(f"no keys to measure: give --all-keys (every key of --space {space_name}), --archs, "
                            "--n or --grid")
    return keysets.unique(specs), notes


@app.command("build-table")
def build_table_cmd(
    gpu: GpuOpt = None,
    precision: PrecisionOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = None,
    batch: BatchOpt = 1,
    threads: ThreadsOpt = None,
    protocol: ProtocolOpt = None,
    space: SpaceOpt = "gpunet",
    all_keys: Annotated[bool, typer.Option("--all-keys", help="Every key reachable in --space (gpunet: a long job).")] = False,
    archs: ArchsOpt = [],  # noqa: B006 - typer's idiom for a repeatable option
    n: Annotated[int, typer.Option("--n", min=0, max=MAX_NETWORKS, help="Keys of N Sobol networks of --space.")] = 0,
    seed: SeedOpt = 0,
    grid: Annotated[List[str], typer.Option(help="A grid file of blocks (repeatable), e.g. factor_grid.")] = [],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option(
        help="Table file (default tables/<device>-<backend>-<precision>-b<batch>.jsonl).", parser=path_value)] = None,
    retry_failed: Annotated[bool, typer.Option(help="Re-measure keys whose earlier attempt failed.")] = False,
    quick: Annotated[bool, typer.Option(help="Shorter timing (smoke runs; noisier).")] = False,
    ray: Annotated[Optional[str], typer.Option(help="Shard keys over a Ray cluster: auto or an address.",
                                               parser=text_value)] = None,
    opt_level: OptLevelOpt = 3,
    workspace_mb: WorkspaceOpt = None,
    cudnn_benchmark: CudnnOpt = False,
    json_out: JsonOpt = False,
    sample: Annotated[Optional[int], typer.Option("--sample", min=0, max=MAX_NETWORKS, hidden=True)] = None,
    sample_space: Annotated[Optional[str], typer.Option("--sample-space", hidden=True, parser=text_value)] = None,
):
    """Measure every block of a key set and store the rows in a latency table.

    Exit code 3 when some rows failed (the table stays valid; --retry-failed measures them again).
    """
    from latbench.files import check_output

    opts = MeasureOptions(backend, device, precision, batch, protocol, threads, gpu, opt_level, workspace_mb,
                          cudnn_benchmark)
    n = n or (sample or 0)  # --sample N and --sample-space S: the spellings of earlier releases
    space = sample_space or space
    specs, notes = collect_specs(space, all_keys, archs, n, seed, grid)
    if out is not None:
        check_output(out, "table file", append=True)
    err = console(stderr=True)
    build = _build_on_ray if ray else _build_here
    summary, out, why = build(specs, out, opts, notes, quick=quick, retry_failed=retry_failed, ray=ray)
    if json_out:
        emit_json({"table": str(out), "backend": why, "keys": summary.total, "measured": summary.measured,
                   "already": summary.skipped, "failed": summary.failed,
                   "failures": [{"key": k, "reason": r} for k, r in summary.failures],
                   "s_per_key": summary.s_per_key})
    else:
        err.print(f"{out}: {summary.line()}")
        for key, reason in summary.failures[:10]:
            err.print(f"  failed {key}: {reason}")
        if len(summary.failures) > 10:
            err.print(f"  ... and {len(summary.failures) - 10} more (latbench table show --table {out})")
    if summary.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _say(why: str, notes: list[str]) -> None:
    err = console(stderr=True)
    for line in [why] + notes:
        err.print(line)


def _build_here(specs, out, opts: MeasureOptions, notes, *, quick: bool, retry_failed: bool, ray=None):
    from latbench import backends
    from latbench.build import build_table
    from latbench.harness import HarnessSettings
    from latbench.provenance import default_table_name, table_meta
    from latbench.table import TableWriter

    m = resolve_measurer(opts)
    be = backends.create(m.name, m.config)
    settings = HarnessSettings.for_device(m.config.device, quick=quick)
    meta = table_meta(be, settings)
    out = out or Path(default_table_name(meta))
    TableWriter(out, meta)  # refuses a table measured with other settings before any output
    _say(m.why, notes)
    return build_table(specs, out, be, settings, retry_failed=retry_failed), out, m.why


def _build_on_ray(specs, out, opts: MeasureOptions, notes, *, quick: bool, retry_failed: bool, ray: str):
    """Resolution happens on a worker (the driver may lack the GPU), --gpu is checked against the
    workers' device, and the options applied are those of the backend the workers resolved."""
    from latbench.distributed import build_table_ray, connect, resolve_on_cluster
    from latbench.harness import HarnessSettings

    if out is None:
        raise LatbenchError("--ray needs --out (the device name comes from the workers)")
    if opts.gpu and opts.device == Device.cpu:
        raise LatbenchError("--gpu names a GPU target; a CPU table (--device cpu) takes no --gpu")
    cluster = connect(ray)
    name, dev, why = resolve_on_cluster(cluster, opts.backend.value, opts.device.value if opts.device else None)
    settings = HarnessSettings.for_device(dev, quick=quick)
    _say(why, notes)
    summary = build_table_ray(specs, out, name, opts.config(name, dev), settings, address=ray,
                              retry_failed=retry_failed, gpu=opts.gpu)
    return summary, out, why


def _table_path(table: Optional[Path], positional: Optional[Path]) -> Path:
    path = table or positional
    if path is None:
        raise LatbenchError("give --table PATH")
    return path


HiddenPath = Annotated[Optional[Path], typer.Argument(hidden=True, show_default=False, parser=path_value)]


@table_app.command("show")
def show(table: Annotated[Optional[Path], typer.Option("--table", help="Latency table.", parser=path_value)] = None,
         path: HiddenPath = None,
         failures: Annotated[int, typer.Option(min=0, max=1_000_000, help="Failed rows to list.")] = 20,
         json_out: JsonOpt = False):
    """Metadata, counts, calibration and failures of a table."""
    from latbench.table import load_table

    path = _table_path(table, path)
    t = load_table(path)
    c = t.counts()
    if json_out:
        meta = {k: v for k, v in t.meta.items() if k not in ("type", "units")}
        emit_json({"table": str(path), "provenance": t.describe(), "meta": meta, "counts": c,
                   "calibration": t.calibration, "failed": [{"key": k, "reason": r} for k, r
                                                            in list(t.failed().items())[:failures]],
                   "units": t.meta.get("units")})
        return
    out = console()
    m = t.meta
    out.print(Text.assemble((str(path), "bold"), f": {t.describe()}"))
    dev = m["device"]
    details = {k: v for k, v in dev.items() if k not in ("name", "kind")}
    out.print(f"device: {dev['name']} ({dev['kind']}) " + ", ".join(f"{k} {v}" for k, v in details.items()))
    out.print(f"backend: {m['backend']['name']} {m['backend']['version']} {m['backend'].get('options') or ''}")
    heap = m["backend"].get("heap")
    if heap:
        out.print("heap: " + ", ".join(f"{k} {v}" for k, v in heap.items()))
    out.print(f"harness: {m['harness']}")
    out.print(f"created {m.get('created_at')} on {m.get('host')} with latbench {m.get('latbench_version')}")
    out.print(f"rows: {c['rows']} ({c['ok']} ok, {c['failed']} failed, {c['throttled']} taken while the GPU throttled, "
              f"{c['contended']} while another process held the CPU, {c['nvml_error']} without GPU readings); "
              "times in microseconds per forward pass of one batch")
    if t.calibration:
        cal = t.calibration
        error = (cal.get("cv") or {}).get("median_abs_pct_error")
        out.print(f"calibration: {cal['model']} fitted on {cal.get('n_networks') or 'an unstated number of'} networks, "
                  f"held-out median error " + (f"{error:.2f} %" if error is not None else "not stated"))
    fails = t.failed()
    if fails:
        tab = RichTable(title=f"failed rows ({len(fails)})")
        tab.add_column("key")
        tab.add_column("reason")
        for k, r in list(fails.items())[:failures]:
            tab.add_row(k, r)
        out.print(tab)


@table_app.command("export")
def export(table: Annotated[Optional[Path], typer.Option("--table", help="Latency table.", parser=path_value)] = None,
           path: HiddenPath = None,
           csv: Annotated[Optional[Path], typer.Option(help="Write CSV here.", parser=path_value)] = None,
           parquet: Annotated[Optional[Path], typer.Option(help="Write Parquet here.", parser=path_value)] = None,
           json_out: JsonOpt = False):
    """Export a table's rows to CSV or Parquet (metadata goes to Parquet's schema metadata)."""
    import contextlib
    import json

    from latbench.files import atomic_path, check_distinct, check_output
    from latbench.table import load_table, table_files

    path = _table_path(table, path)
    if not csv and not parquet:
        raise LatbenchError("give --csv OUT or --parquet OUT")
    check_distinct({"--table's files": table_files(path), "--csv": csv, "--parquet": parquet})
    for target in filter(None, (csv, parquet)):
        check_output(target)
    t = load_table(path)
    df = t.to_pandas()
    # Both files are written to temporary names and renamed only when both are complete: a
    # Parquet that fails leaves no CSV behind.
    with contextlib.ExitStack() as stack:
        tmp = {target: stack.enter_context(atomic_path(target)) for target in filter(None, (csv, parquet))}
        if parquet:
            df.attrs["latbench_meta"] = json.dumps(t.meta)
            try:
                df.to_parquet(tmp[parquet], index=False)
            # pyarrow's ArrowInvalid/ArrowTypeError (ValueError, TypeError) and
            # ArrowNotImplementedError (an extra row field holding {}: NotImplementedError)
            except (ValueError, TypeError, NotImplementedError) as err:
                raise LatbenchError(f"{path}: cannot be written as Parquet ({str(err).splitlines()[0][:160]}); "
                                    "export it as CSV") from None
        if csv:
            df.to_csv(tmp[csv], index=False)
    written = [str(target) for target in filter(None, (csv, parquet))]
    if json_out:
        emit_json({"table": str(path), "rows": len(df), "files": written})
    else:
        for w in written:
            print(f"wrote {w} ({len(df)} rows)")


@table_app.command("merge")
def merge(table: Annotated[List[Path], typer.Option("--table", help="A table to merge (give two).",
                                                    parser=path_value)] = [],  # noqa: B006
          paths: Annotated[Optional[List[Path]], typer.Argument(hidden=True, show_default=False,
                                                                parser=path_value)] = None,
          out: Annotated[Path, typer.Option(help="Merged table file (must not exist).", parser=path_value)] = ...,
          json_out: JsonOpt = False):
    """Merge two tables of the same device, backend, precision, batch and protocol."""
    from latbench.table import merge_tables

    tables = list(table) + list(paths or [])
    if len(tables) != 2:
        raise LatbenchError(f"give exactly two tables (--table A --table B), got {len(tables)}")
    a, b = tables
    n, conflicts = merge_tables(a, b, out)
    if json_out:
        emit_json({"table": str(out), "rows": n, "keys_in_both": conflicts, "from": [str(a), str(b)]})
    else:
        print(f"wrote {out}: {n} rows ({conflicts} keys in both; ok rows preferred, then {a}'s)")
