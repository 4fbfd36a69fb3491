"""`latbench build-table` and `latbench table show|export|merge`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from latbench.cli import app
from latbench.cli.output import console
from latbench.errors import LatbenchError

table_app = typer.Typer(help="Inspect, export and merge latency tables.", no_args_is_help=True)
app.add_typer(table_app, name="table")


def collect_specs(space_all: Optional[str], archs: List[str], sample: int, sample_space: str,
                  seed: int, grids: List[str]) -> tuple[list, list[str]]:
    """The union of the key-set options, and one line per set saying what it added."""
    from latbench import keysets
    from nas.space import load_space

    specs, notes = [], []
    if space_all:
        s = keysets.space_specs(load_space(space_all))
        notes.append(f"--space {space_all}: {len(s):,} keys reachable in the space")
        specs += s
    if archs:
        s = keysets.arch_specs(archs, load_space(sample_space))
        notes.append(f"--archs: {len(s)} keys needed by {len(archs)} network(s)")
        specs += s
    if sample:
        s = keysets.sample_specs(load_space(sample_space), sample, seed)
        notes.append(f"--sample {sample}: {len(s)} keys of {sample} Sobol networks of {sample_space} (seed {seed})")
        specs += s
    for g in grids:
        s = keysets.grid_specs(g)
        notes.append(f"--grid {g}: {len(s)} keys")
        specs += s
    if not specs:
        raise LatbenchError("no keys to measure: give --space, --archs, --sample or --grid")
    return keysets.unique(specs), notes


@app.command("build-table")
def build_table_cmd(
    gpu: Optional[str] = typer.Option(None, help="Target GPU (a100, h100, ...); must be the visible one."),
    precision: Optional[str] = typer.Option(None, help="fp16 | bf16 | fp32 (default fp16 on GPU, fp32 on CPU)."),
    backend: str = typer.Option("auto", help="auto | tensorrt | torch | onnxruntime."),
    device: Optional[str] = typer.Option(None, help="cuda | cpu (default: cuda when visible)."),
    batch: int = typer.Option(1, help="Batch size."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default 1: multi-threaded timings "
                                          "collapse when another process competes for a core)."),
    protocol: Optional[str] = typer.Option(None, help="Cache state: warm | weights-cold | cold "
                                           "(default: weights-cold on GPU, warm on CPU)."),
    space: Optional[str] = typer.Option(None, help="Every key reachable in this space (gpunet: a long job)."),
    archs: List[str] = typer.Option([], help="Keys these networks need (repeatable)."),
    sample: int = typer.Option(0, help="Keys of N Sobol-sampled networks."),
    sample_space: str = typer.Option("gpunet", help="Space for --sample and vector --archs."),
    seed: int = typer.Option(0, help="Sobol seed for --sample."),
    grid: List[str] = typer.Option([], help="A grid file of blocks (repeatable), e.g. factor_grid."),
    out: Optional[Path] = typer.Option(None, help="Table file (default tables/<device>-<backend>-<precision>-b<batch>.jsonl)."),
    retry_failed: bool = typer.Option(False, help="Re-measure keys whose earlier attempt failed."),
    quick: bool = typer.Option(False, help="Shorter timing (smoke runs; noisier)."),
    ray: Optional[str] = typer.Option(None, help="Shard keys over a Ray cluster: auto or an address."),
    opt_level: int = typer.Option(3, help="TensorRT builder optimisation level (0-5; 0 ignores the timing cache)."),
    workspace_mb: Optional[int] = typer.Option(None, help="TensorRT workspace limit in MiB."),
):
    """Measure every block of a key set and store the rows in a latency table."""
    from latbench import backends, env
    from latbench.build import backend_config, build_table, default_table_name, table_meta
    from latbench.harness import HarnessSettings
    from latbench.table import TableWriter

    if backend != "auto" and backend not in backends.NAMES:
        raise LatbenchError(f"unknown backend {backend!r}; use auto, {', '.join(backends.NAMES)}")
    if batch < 1:
        raise LatbenchError(f"--batch must be >= 1, got {batch}")
    if gpu and device == "cpu":
        raise LatbenchError("--gpu names a GPU target; a CPU table (--device cpu) takes no --gpu")
    if out is not None and out.is_dir():
        raise LatbenchError(f"--out {out}: is a folder; give a table file path")
    specs, notes = collect_specs(space, archs, sample, sample_space, seed, grid)
    options = {"opt_level": opt_level, "workspace_mb": workspace_mb} if backend == "tensorrt" else {}
    err = console(stderr=True)
    if ray:
        from latbench.distributed import build_table_ray, connect

        cluster_gpus = connect(ray).cluster_resources().get("GPU", 0)
        name = "torch" if backend == "auto" else backend
        config = backend_config(device or ("cuda" if cluster_gpus else "cpu"), precision, batch,
                                threads, protocol, options)
        settings = HarnessSettings.for_device(config.device, quick=quick)
        if out is None:
            raise LatbenchError("--ray needs --out (the device name comes from the workers)")
        for n in notes:
            err.print(n)
        summary = build_table_ray(specs, out, name, config, settings, address=ray, retry_failed=retry_failed)
    else:
        if gpu:
            visible = (env.cuda_device_info() or {}).get("name", "no GPU")
            if not env.gpu_matches(gpu, visible):
                raise LatbenchError(f"--gpu {gpu} does not match the visible device ({visible}); "
                                    "run on that GPU or drop --gpu")
        name, dev, why = backends.resolve(backend, device)
        be = backends.create(name, backend_config(dev, precision, batch, threads, protocol, options))
        settings = HarnessSettings.for_device(dev, quick=quick)
        meta = table_meta(be, settings)
        out = out or Path(default_table_name(meta))
        TableWriter(out, meta)  # refuses a table measured with other settings before any output
        err.print(why)
        for n in notes:
            err.print(n)
        summary = build_table(specs, out, be, settings, retry_failed=retry_failed)
    err.print(f"{out}: {summary.line()}")
    for key, reason in summary.failures[:10]:
        err.print(escape(f"  failed {key}: {reason}"))
    if len(summary.failures) > 10:
        err.print(f"  ... and {len(summary.failures) - 10} more (latbench table show {out})")


@table_app.command("show")
def show(path: Path, failures: int = typer.Option(20, help="Failed rows to list.")):
    """Metadata, counts and failures of a table."""
    from latbench.table import load_table

    t = load_table(path)
    out = console()
    m = t.meta
    out.print(f"[bold]{path}[/bold]: {t.describe()}")
    dev = m["device"]
    details = {k: v for k, v in dev.items() if k not in ("name", "kind")}
    out.print(f"device: {dev['name']} ({dev['kind']}) " + ", ".join(f"{k} {v}" for k, v in details.items()))
    out.print(f"backend: {m['backend']['name']} {m['backend']['version']} {m['backend'].get('options') or ''}")
    heap = m["backend"].get("heap")
    if heap:
        out.print("heap: " + ", ".join(f"{k} {v}" for k, v in heap.items()))
    out.print(f"harness: {m['harness']}")
    out.print(f"created {m.get('created_at')} on {m.get('host')} with latbench {m.get('latbench_version')}")
    c = t.counts()
    out.print(f"rows: {c['rows']} ({c['ok']} ok, {c['failed']} failed, {c['throttled']} taken while the GPU throttled, "
              f"{c['contended']} while another process held the CPU); "
              "times in microseconds per forward pass of one batch")
    if t.calibration:
        cal = t.calibration
        out.print(f"calibration: {cal.get('model')} fitted on {cal.get('n_networks')} networks, "
                  f"held-out median error {cal.get('cv', {}).get('median_abs_pct_error', float('nan')):.2f} %")
    fails = t.failed()
    if fails:
        tab = RichTable(title=f"failed rows ({len(fails)})")
        tab.add_column("key")
        tab.add_column("reason")
        for k, r in list(fails.items())[:failures]:
            tab.add_row(k, escape(r))
        out.print(tab)


@table_app.command("export")
def export(path: Path, csv: Optional[Path] = typer.Option(None, help="Write CSV here."),
           parquet: Optional[Path] = typer.Option(None, help="Write Parquet here.")):
    """Export a table's rows to CSV or Parquet (metadata goes to Parquet's schema metadata)."""
    import json

    from latbench.table import load_table

    if not csv and not parquet:
        raise LatbenchError("give --csv OUT or --parquet OUT")
    t = load_table(path)
    df = t.to_pandas()
    for target in filter(None, (csv, parquet)):
        if not target.parent.exists():
            raise LatbenchError(f"{target}: folder {target.parent} does not exist")
    if csv:
        df.to_csv(csv, index=False)
        print(f"wrote {csv} ({len(df)} rows)")
    if parquet:
        df.attrs["latbench_meta"] = json.dumps(t.meta)
        df.to_parquet(parquet, index=False)
        print(f"wrote {parquet} ({len(df)} rows)")


@table_app.command("merge")
def merge(a: Path, b: Path, out: Path = typer.Option(..., help="Merged table file.")):
    """Merge two tables of the same device, backend, precision, batch and protocol."""
    from latbench.table import merge_tables

    n, conflicts = merge_tables(a, b, out)
    print(f"wrote {out}: {n} rows ({conflicts} keys in both; ok rows preferred, then {a}'s)")
