"""`latbench arch show|decode|encode` and `latbench export`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from latbench.arch import Arch
from latbench.arch_io import arch_to_json, load_arch
from latbench.blocks import KINDS, parse_key
from latbench.cli import app
from latbench.cli.options import JsonOpt, Precision, SpaceOpt, emit_json, path_value
from latbench.cli.output import console, giga, millions
from latbench.errors import LatbenchError, SpecError
from latbench.space import bundled_spaces, load_space

arch_app = typer.Typer(help="Inspect, encode and decode architectures.", no_args_is_help=True)
app.add_typer(arch_app, name="arch")

SourceArg = Annotated[str, typer.Argument(help="Arch file, bundled name (gpunet-1) or encoded vector.")]


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
        expanding = "e" in KINDS[first.kind].tokens
        with_se = "se" in KINDS[first.kind].tokens
        rows.append({
            "stage": stage, "block": _values(blocks, "kind"), "layers": len(blocks),
            "channels": f"{first.in_channels}->{last.out_channels}", "stride": first.stride,
            "kernel": _values(blocks, "kernel"),
            "expansion": _values(blocks, "expansion") if expanding else "-",
            "act": _values(blocks, "act"),
            "se": ("yes" if all(b.se for b in blocks) else "mixed" if any(b.se for b in blocks) else "no")
            if with_se else "-",
            "size": f"{first.height}->{last.out_height if last.kind != 'tail' else 1}",
            "params": sum(b.params for b in blocks), "macs": sum(b.macs for b in blocks),
        })
    return rows


@arch_app.command("show")
def show(source: SourceArg, space: SpaceOpt = "gpunet", json_out: JsonOpt = False):
    """Per-stage table with feature-map sizes, parameters and MACs."""
    arch = load_arch(source, load_space(space))
    rows = stage_rows(arch)
    if json_out:
        emit_json({"network": arch.name or source, "resolution": arch.resolution, "blocks": len(arch.blocks),
                   "params": arch.params, "macs": arch.macs, "stages": rows, "keys": list(arch.keys),
                   "units": "params and MACs are counts at batch 1 (MACs of convolutions and linear layers)"})
        return
    table = Table(title=f"{arch.name or source}: {arch.resolution}x{arch.resolution} input, "
                        f"{len(arch.blocks)} blocks")
    for col in ("stage", "block", "layers", "channels", "stride", "kernel", "expansion", "act",
                "SE", "size", "params", "MACs"):
        table.add_column(col, justify="right" if col in ("layers", "params", "MACs") else "left")
    for r in rows:
        table.add_row(str(r["stage"]), r["block"], str(r["layers"]), r["channels"], str(r["stride"]),
                      r["kernel"], r["expansion"], r["act"], r["se"], r["size"],
                      millions(r["params"]), f"{r['macs'] / 1e6:.1f} M")
    out = console()
    out.print(table)
    out.print(f"total: parameters {millions(arch.params)}, MACs {giga(arch.macs)} "
              f"(FLOPs {giga(2 * arch.macs)}), batch 1")


@arch_app.command("list")
def list_cmd(timm: Annotated[bool, typer.Option("--timm", help="timm's EfficientNet/MobileNet models by name.")] = False,
             json_out: JsonOpt = False):
    """Bundled networks and spaces; with --timm, timm's models: what latbench builds and what it cannot."""
    from latbench import resources
    from latbench.timm_arch import models, supported

    folder = resources.config_dir()
    bundled = sorted(p.stem for p in folder.glob("*.json") if p.stem.startswith("gpunet-"))
    spaces = bundled_spaces()
    if not timm:
        if json_out:
            emit_json({"networks": bundled, "spaces": spaces})
        else:
            print("networks: " + ", ".join(bundled) + " (and timm:NAME: latbench arch list --timm)")
            print("spaces: " + ", ".join(spaces))
        return
    rows = []
    for name, (arch, why) in supported().items():
        pad = models()[name]["pad"]
        rows.append({"name": f"timm:{name}", "supported": arch is not None, "why_not": why or None,
                     "params": arch.params if arch else models()[name]["params"],
                     "resolution": models()[name]["resolution"], "blocks": len(arch.blocks) if arch else None,
                     "note": "TensorFlow 'same' padding built symmetric (same shapes and parameters)"
                     if arch and pad == "same" else None})
    if json_out:
        emit_json({"models": rows, "supported": sum(r["supported"] for r in rows),
                   "units": "params: trainable parameters, BatchNorm included; resolution in pixels"})
        return
    table = Table(title=f"timm models ({sum(r['supported'] for r in rows)} of {len(rows)} built by latbench)")
    for col in ("model", "params", "res", "blocks", "note"):
        table.add_column(col, justify="right" if col in ("params", "res", "blocks") else "left")
    for r in sorted(rows, key=lambda r: (not r["supported"], r["name"])):
        note = r["note"] or "" if r["supported"] else f"no: {r['why_not']}"
        table.add_row(r["name"], millions(r["params"]), str(r["resolution"]), str(r["blocks"] or "-"), note)
    console().print(table)


@arch_app.command("decode")
def decode(vector: Annotated[str, typer.Argument(help="Comma-separated integers, or a file holding them.")],
           space: SpaceOpt = "gpunet"):
    """Print the network of an encoded vector as latbench JSON."""
    emit_json(arch_to_json(load_arch(vector, load_space(space))))


@arch_app.command("encode")
def encode(source: SourceArg, space: SpaceOpt = "gpunet", json_out: JsonOpt = False):
    """Print a network's encoding, comma-separated."""
    sp = load_space(space)
    vector = [int(v) for v in sp.encode(load_arch(source, sp))]
    if json_out:
        emit_json({"space": sp.name, "vector": vector})
    else:
        print(",".join(map(str, vector)))


@app.command("export")
def export(source: Annotated[str, typer.Argument(help="Arch file, bundled name, vector, or a block key.")],
           onnx: Annotated[Path, typer.Option("--onnx", help="Output .onnx path.", parser=path_value)],
           precision: Annotated[Precision, typer.Option(help="Weights and I/O.")] = Precision.fp32,
           batch: Annotated[int, typer.Option(min=1, max=4096, help="Static batch size.")] = 1,
           opset: Annotated[int, typer.Option(min=17, max=23, help="ONNX opset.")] = 17,
           check: Annotated[bool, typer.Option(help="Compare ONNX Runtime's output with torch's.")] = True,
           space: SpaceOpt = "gpunet", json_out: JsonOpt = False):
    """Export a network (or one block) to ONNX, BN folded, cleaned and checked."""
    from latbench.files import check_distinct, check_output
    from latbench.onnx_export import check_with_onnxruntime, export_onnx
    from latbench.rows import failure_reason

    try:
        target = parse_key(source)
    except SpecError:
        if source.split("-", 1)[0] in KINDS and "-" in source and len(source) <= 200 and not Path(source).exists():
            raise  # meant as a block key: say what is wrong with it
        target = load_arch(source, load_space(space))
    check_output(onnx, "ONNX file")
    if isinstance(target, Arch) and os.path.isfile(source):
        check_distinct({"the architecture file": Path(source), "--onnx": onnx})
    try:
        proto = export_onnx(target, onnx, precision=precision.value, batch=batch, opset=opset)
        result = {"onnx": str(onnx), "nodes": len(proto.graph.node), "precision": precision.value, "batch": batch,
                  "opset": opset}
        if check and precision != Precision.bf16:
            result["onnxruntime_max_abs_error"] = check_with_onnxruntime(proto, target, precision=precision.value,
                                                                         batch=batch)
    except (RuntimeError, OverflowError, MemoryError, ValueError) as err:  # a block too big to build here
        if isinstance(err, LatbenchError):
            raise
        raise LatbenchError(f"cannot export {source}: {failure_reason(err)}") from None
    if json_out:
        emit_json(result)
        return
    msg = f"wrote {onnx} ({result['nodes']} nodes, {precision.value}, batch {batch}, opset {opset})"
    if "onnxruntime_max_abs_error" in result:
        msg += f"; ONNX Runtime vs torch max abs error {result['onnxruntime_max_abs_error']:.2e}"
    print(msg)
