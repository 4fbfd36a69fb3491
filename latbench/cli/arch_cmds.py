"""`latbench arch show|decode|encode` and `latbench export`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from latbench.arch import Arch
from latbench.arch_io import arch_to_json, load_arch
from latbench.cli import app
from latbench.cli.output import console, giga, millions
from latbench.errors import LatbenchError, SpecError
from latbench.spec import parse_key

arch_app = typer.Typer(help="Inspect, encode and decode architectures.", no_args_is_help=True)
app.add_typer(arch_app, name="arch")

SPACE_HELP = "Search space: a bundled name (gpunet, tiny) or a space file."


def _space(name: str):
    from nas.space import load_space

    return load_space(name)


def _values(blocks, attr: str) -> str:
    seen = []
    for b in blocks:
        v = getattr(b, attr)
        v = int(v) if isinstance(v, float) and v.is_integer() else v
        if v not in seen:
            seen.append(v)
    return ",".join(str(v) for v in seen)


def stage_rows(arch: Arch) -> list[dict]:
    """One summary row per stage: what `arch show` prints."""
    rows = []
    for stage, blocks in arch.stages():
        first, last = blocks[0], blocks[-1]
        expanding = first.kind in ("irb", "fused_irb")
        rows.append({
            "stage": stage, "block": _values(blocks, "kind"), "layers": len(blocks),
            "channels": f"{first.in_channels}->{last.out_channels}", "stride": first.stride,
            "kernel": _values(blocks, "kernel"),
            "expansion": _values(blocks, "expansion") if expanding else "-",
            "act": _values(blocks, "act"),
            "se": ("yes" if all(b.se for b in blocks) else "mixed" if any(b.se for b in blocks) else "no")
            if expanding else "-",
            "size": f"{first.height}->{last.out_height if last.kind != 'tail' else 1}",
            "params": sum(b.params for b in blocks), "macs": sum(b.macs for b in blocks),
        })
    return rows


@arch_app.command("show")
def show(source: str = typer.Argument(..., help="Arch file, bundled name (gpunet-1) or vector."),
         space: str = typer.Option("gpunet", help=SPACE_HELP)):
    """Per-stage table with feature-map sizes, parameters and MACs."""
    arch = load_arch(source, _space(space))
    table = Table(title=f"{arch.name or source}: {arch.resolution}x{arch.resolution} input, "
                        f"{len(arch.blocks)} blocks")
    for col in ("stage", "block", "layers", "channels", "stride", "kernel", "expansion", "act",
                "SE", "size", "params", "MACs"):
        table.add_column(col, justify="right" if col in ("layers", "params", "MACs") else "left")
    for r in stage_rows(arch):
        table.add_row(str(r["stage"]), r["block"], str(r["layers"]), r["channels"], str(r["stride"]),
                      r["kernel"], r["expansion"], r["act"], r["se"], r["size"],
                      millions(r["params"]), f"{r['macs'] / 1e6:.1f} M")
    out = console()
    out.print(table)
    out.print(f"total: parameters {millions(arch.params)}, MACs {giga(arch.macs)} "
              f"(FLOPs {giga(2 * arch.macs)}), batch 1")


@arch_app.command("decode")
def decode(vector: str = typer.Argument(..., help="Comma-separated integers, or a file holding them."),
           space: str = typer.Option("gpunet", help=SPACE_HELP)):
    """Print the network of an encoded vector as latbench JSON."""
    arch = load_arch(vector, _space(space))
    print(json.dumps(arch_to_json(arch), indent=2))


@arch_app.command("encode")
def encode(source: str = typer.Argument(..., help="Arch file or bundled name."),
           space: str = typer.Option("gpunet", help=SPACE_HELP)):
    """Print a network's encoding, comma-separated."""
    sp = _space(space)
    arch = load_arch(source, sp)
    vector = sp.encode(arch)
    print(",".join(str(int(v)) for v in vector))


@app.command("export")
def export(source: str = typer.Argument(..., help="Arch file, bundled name, vector, or a block key."),
           onnx: Path = typer.Option(..., "--onnx", help="Output .onnx path."),
           precision: str = typer.Option("fp32", help="fp32 | fp16 | bf16 (weights and I/O)."),
           batch: int = typer.Option(1, min=1, help="Static batch size."),
           opset: int = typer.Option(17, min=17, help="ONNX opset (>= 17)."),
           check: bool = typer.Option(True, help="Compare ONNX Runtime's output with torch's."),
           space: str = typer.Option("gpunet", help=SPACE_HELP)):
    """Export a network (or one block) to ONNX, BN folded, cleaned and checked."""
    from latbench.onnx_export import check_with_onnxruntime, export_onnx

    try:
        target = parse_key(source)
    except SpecError:
        target = load_arch(source, _space(space))
    _writable(onnx)
    proto = export_onnx(target, onnx, precision=precision, batch=batch, opset=opset)
    msg = f"wrote {onnx} ({len(proto.graph.node)} nodes, {precision}, batch {batch}, opset {opset})"
    if check and precision != "bf16":
        err = check_with_onnxruntime(proto, target, precision=precision, batch=batch)
        msg += f"; ONNX Runtime vs torch max abs error {err:.2e}"
    print(msg)


def _writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as err:
            raise LatbenchError(f"{path}: cannot create folder {parent}: {err.strerror}") from None
    if path.is_dir():
        raise LatbenchError(f"{path}: is a folder; give a file path")
