"""Read and write architectures in the three forms users bring.

(a) latbench's stage-wise JSON (an object with "resolution", "head", "stages", "tail"),
(b) NVIDIA's released GPUNet JSON (a list of layer objects starting with a "data" layer),
(c) an encoded vector of the GPUNet space (a JSON list, or comma-separated integers).

`load_arch` accepts a path, a bundled config name ("gpunet-1"), a vector string, or already
parsed JSON, and returns an `Arch`. Every problem is an ArchError naming the source and field.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from latbench import resources, schema
from latbench.arch import MAX_BLOCKS, Arch, StageSpec, StagedArch, staged_from_blocks
from latbench.blocks import KINDS, BlockArgs, BlockKind, BlockSpec
from latbench.errors import ArchError, LatbenchError, SpecError
from latbench.space import load_space
from latbench.timm_arch import is_timm, timm_arch

_VECTOR = re.compile(r"\s*\[?\s*-?\d+(\s*,\s*-?\d+)*\s*\]?\s*")
#: The formats of latbench's own architecture JSON that this version reads.
FORMATS = ("latbench-arch/1",)


def _check_type(value, kind, where: str):
    return schema.check_type(value, kind, where, ArchError)


def _fields(obj, where: str, required: dict, optional: dict | None = None) -> dict:
    """Validate a JSON object against required {name: type} and optional {name: (type, default)}."""
    return schema.fields(obj, where, required, optional, error=ArchError)


# -- (a) latbench stage-wise JSON -----------------------------------------------------------------
#: JSON field of a stage -> BlockArgs field; which fields a stage takes depends on its kind.
_STAGE_FIELDS = {"filters": "out_channels", "kernel": "kernel", "stride": "stride", "expansion": "expansion",
                 "se": "se", "act": "act", "skip": "skip", "groups": "groups", "classes": "classes"}


def _stage_schema(kind: BlockKind) -> tuple[dict, dict]:
    """(required, optional) JSON fields of a stage of `kind`, from the kind's tokens."""
    required = {"filters": int, "layers": int, "kernel": int, "stride": int, "act": str}
    optional: dict = {}
    if "e" in kind.tokens:
        required["expansion"] = float
    if "se" in kind.tokens:
        optional["se"] = ((bool, int), 0)
    if kind.skippable:
        optional["skip"] = (bool, None)
    if "g" in kind.tokens:
        optional["groups"] = (int, 1)
    return required, optional


def _args(kind: str, values: dict, where: str) -> BlockArgs:
    try:
        return BlockArgs(kind=kind, **{_STAGE_FIELDS[k]: v for k, v in values.items()
                                      if k in _STAGE_FIELDS and v is not None})
    except SpecError as err:
        raise ArchError(f"{where}: {err}") from None


def staged_from_json(obj: dict, source: str = "arch") -> StagedArch:
    top = _fields(
        obj, source,
        {"resolution": int, "head": dict, "stages": list, "tail": dict},
        {"name": (str, ""), "in_channels": (int, 3), "format": (str, "latbench-arch/1"),
         "source": (str, "")},
    )
    if top["format"] not in FORMATS:
        raise ArchError(f"{source}: format {top['format']!r} is not one this latbench reads "
                        f"({', '.join(FORMATS)}); upgrade latbench or convert the file")
    if len(top["stages"]) > MAX_BLOCKS:
        raise ArchError(f"{source}: stages: {len(top['stages'])} stages; at most {MAX_BLOCKS}")
    head = _fields(top["head"], f"{source}: head", {"filters": int},
                   {"kernel": (int, 3), "stride": (int, 2), "act": (str, "swish"), "block": (str, "head")})
    tail = _fields(top["tail"], f"{source}: tail", {"filters": int},
                   {"classes": (int, 1000), "act": (str, "relu"), "block": (str, "tail")})
    stages, last = [], 0
    for i, st in enumerate(top["stages"]):
        where = f"{source}: stages[{i}]"
        if not isinstance(st, dict):
            raise ArchError(f"{where}: must be a JSON object, got {json.dumps(st)[:60]}")
        if "block" not in st:
            raise ArchError(f"{where}: missing field 'block' (the stage's block kind)")
        name = st["block"]
        kind = _body_kind(name, f"{where}.block")
        required, optional = _stage_schema(kind)
        f = _fields({k: v for k, v in st.items() if k != "block"}, where, required,
                    optional | {"stage": (int, last + 1)})
        if f["stage"] <= last:
            raise ArchError(f"{where}.stage: stage numbers must increase from 1, got {f['stage']}")
        last = f["stage"]
        stages.append(StageSpec(f["stage"], f["layers"], _args(name, f, where)))
    return StagedArch(
        resolution=top["resolution"], head=_args(head.pop("block"), head, f"{source}: head"),
        stages=tuple(stages), tail=_args(tail.pop("block"), tail | {"kernel": 1}, f"{source}: tail"),
        in_channels=top["in_channels"], name=top["name"],
    )


def _body_kind(name, where: str) -> BlockKind:
    body = [k for k, v in KINDS.items() if v.role == "body"]
    if not isinstance(name, str) or name not in body:
        raise ArchError(f"{where}: unknown block {name!r}; expected one of {', '.join(body)}")
    return KINDS[name]


def _args_json(args: BlockArgs, kind: BlockKind) -> dict:
    """The JSON fields of a stage's block args (those its kind has, defaults left out)."""
    d = {"filters": args.out_channels, "kernel": args.kernel, "stride": args.stride}
    if "e" in kind.tokens:
        d["expansion"] = _number(args.expansion)
    if "se" in kind.tokens:
        d["se"] = args.se if args.se > 1 else bool(args.se)
    if args.skip is not None:
        d["skip"] = args.skip
    if args.groups != 1:
        d["groups"] = args.groups
    return d | {"act": args.act}


def staged_to_json(staged: StagedArch) -> dict:
    """The latbench JSON object of a stage-wise network (inverse of `staged_from_json`)."""
    def stage(st: StageSpec) -> dict:
        d = {"stage": st.stage, "block": st.block.kind, "layers": st.layers}
        return d | _args_json(st.block, KINDS[st.block.kind])

    h, t = staged.head, staged.tail
    obj = {"format": "latbench-arch/1"}
    if staged.name:
        obj["name"] = staged.name
    head = {"filters": h.out_channels, "kernel": h.kernel, "stride": h.stride, "act": h.act}
    tail = {"filters": t.out_channels, "classes": t.classes, "act": t.act}
    return obj | {
        "resolution": staged.resolution,
        "in_channels": staged.in_channels,
        "head": head | ({"block": h.kind} if h.kind != "head" else {}),
        "stages": [stage(st) for st in staged.stages],
        "tail": tail | ({"block": t.kind} if t.kind != "tail" else {}),
    }


def _number(x: float):
    return int(x) if float(x).is_integer() else x


# -- (b) NVIDIA's released GPUNet JSON ------------------------------------------------------------
_NV_LAYER = {
    "head": ({"num_in_channels": int, "num_out_channels": int},
             {"act": (str, "swish"), "stage": (int, 0)}),
    "conv": ({"num_in_channels": int, "num_out_channels": int, "stride": int, "kernel_size": int,
              "act": str}, {"stage": (int, None)}),
    "irb": ({"num_in_channels": int, "num_out_channels": int, "stride": int, "kernel_size": int,
             "expansion": float, "act": str}, {"use_se": (bool, False), "stage": (int, None)}),
    "tail": ({"num_in_channels": int, "num_out_channels": int, "num_classes": int},
             {"act": (str, "relu"), "stage": (int, None)}),
}
_NV_LAYER["fused_irb"] = _NV_LAYER["irb"]


def arch_from_nvidia(layers: list, source: str = "arch") -> Arch:
    """Parse NVIDIA's layer list; the stage-wise form is kept when every stage is uniform."""
    if len(layers) > MAX_BLOCKS + 1:
        raise ArchError(f"{source}: {len(layers)} layers; at most {MAX_BLOCKS + 1}")
    if not layers or not isinstance(layers[0], dict) or layers[0].get("layer_type") != "data":
        raise ArchError(f"{source}: layer 0 must be {{\"layer_type\": \"data\", \"img_resolution\": ...}}")
    data = _fields({k: v for k, v in layers[0].items() if k != "layer_type"}, f"{source}: layer 0 (data)",
                   {"img_resolution": int}, {"distill": (bool, False)})
    if data["distill"]:
        raise ArchError(
            f"{source}: layer 0 (data): distilled GPUNet configs (\"distill\": true) use other "
            "block modules that latbench does not model; use a non-distilled config"
        )
    blocks, stage_of, size = [], [], data["img_resolution"]
    channels = None
    for i, layer in enumerate(layers[1:], start=1):
        kind = layer.get("layer_type") if isinstance(layer, dict) else None
        where = f"{source}: layer {i} ({kind})"
        if not isinstance(kind, str) or kind not in _NV_LAYER:
            raise ArchError(
                f"{source}: layer {i}: unknown layer_type {kind!r}; expected head, conv, fused_irb, irb or tail"
            )
        required, optional = _NV_LAYER[kind]
        f = _fields({k: v for k, v in layer.items() if k != "layer_type"}, where, required, optional)
        kw = {
            "kind": kind, "in_channels": f["num_in_channels"], "out_channels": f["num_out_channels"],
            "act": f["act"], "height": size, "width": size,
        }
        if kind == "head":
            kw |= {"kernel": 3, "stride": 2}
        elif kind == "tail":
            kw |= {"kernel": 1, "stride": 1, "classes": f["num_classes"]}
        else:
            kw |= {"kernel": f["kernel_size"], "stride": f["stride"]}
        if kind in ("irb", "fused_irb"):
            kw |= {"expansion": f["expansion"], "se": f["use_se"]}
        try:
            block = BlockSpec(**kw)
        except SpecError as err:
            raise ArchError(f"{where}: {err}") from None
        if channels is not None and block.in_channels != channels:
            raise ArchError(
                f"{where}: num_in_channels {block.in_channels} does not chain with the previous "
                f"layer's num_out_channels {channels}"
            )
        blocks.append(block)
        stage = f["stage"]
        if stage is None:
            stage = (stage_of[-1] + 1) if kind == "tail" and stage_of else (stage_of[-1] if stage_of else 1)
        stage_of.append(stage)
        size, channels = block.out_height, block.out_channels
    try:
        arch = Arch(data["img_resolution"], tuple(blocks), tuple(stage_of), Path(source).stem)
    except ArchError as err:
        raise ArchError(f"{source}: {err}") from None
    staged = staged_from_blocks(arch)
    return Arch(arch.resolution, arch.blocks, arch.stage_of, arch.name, staged)


def arch_to_nvidia(arch: Arch) -> list:
    """NVIDIA's layer-list form of a network of GPUNet's kinds (ArchError for any other)."""
    out: list[dict] = [{"layer_type": "data", "img_resolution": arch.resolution, "distill": False}]
    for i, (stage, b) in enumerate(zip(arch.stage_of, arch.blocks)):
        if b.kind not in _NV_LAYER or b.se > 1 or b.skip != KINDS[b.kind].default_skip(b):
            raise ArchError(f"{arch.name or 'arch'}: block {i} ({b.key}) has no form in NVIDIA's GPUNet "
                            "layer list; write latbench JSON instead")
        layer = {"layer_type": b.kind, "num_in_channels": b.in_channels, "num_out_channels": b.out_channels}
        if b.kind == "head":
            layer["act"] = b.act
        elif b.kind == "tail":
            layer["num_classes"] = b.classes
        else:
            layer |= {"stride": b.stride, "kernel_size": b.kernel}
            if b.kind != "conv":
                layer |= {"expansion": _number(b.expansion), "use_se": bool(b.se)}
            layer |= {"act": b.act, "stage": stage}
        out.append(layer)
    return out


# -- loading --------------------------------------------------------------------------------------
def parse_vector(text: str, source: str = "vector") -> list[int]:
    """Integers from '1,2,3' or '[1, 2, 3]'."""
    if not _VECTOR.fullmatch(text):
        raise ArchError(f"{source}: not a comma-separated list of integers")
    tokens = [t.strip() for t in text.strip().strip("[]").split(",")]
    if len(tokens) > MAX_BLOCKS:
        raise ArchError(f"{source}: {len(tokens)} integers; an encoded network has a few dozen")
    for i, t in enumerate(tokens):
        if len(t.lstrip("-")) > schema.MAX_DIGITS:
            raise ArchError(f"{source}: position {i}: {t[:20]}... is not an index of the space")
    return [int(t) for t in tokens]


def arch_from_obj(obj, source: str = "arch", space=None) -> Arch:
    """Build an Arch from parsed JSON of any of the three forms."""
    if isinstance(obj, dict):
        staged = staged_from_json(obj, source)
        return (staged if staged.name else replace(staged, name=Path(source).stem)).expand(source)
    if isinstance(obj, list) and obj and all(isinstance(v, int) and not isinstance(v, bool) for v in obj):
        return _decode(obj, source, space)
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return arch_from_nvidia(obj, source)
    raise ArchError(
        f"{source}: not an architecture: expected a latbench JSON object, NVIDIA's layer list, "
        "or a list of integers"
    )


def _decode(vector: list[int], source: str, space) -> Arch:
    space = space or load_space()
    try:
        return space.decode(vector)
    except LatbenchError as err:
        raise ArchError(f"{source}: {err}") from None


def load_arch(source, space=None) -> Arch:
    """Load an architecture from a path, a bundled name, a vector string, or parsed JSON.

    "timm:NAME" is a model of timm's EfficientNet/MobileNet family (latbench.timm_arch). Any other
    string is tried, in order, as an existing file, a bundled config name in layer_configs/
    ("gpunet-1"), and a comma-separated vector of the space (default: GPUNet).
    """
    if not isinstance(source, (str, Path)):
        return arch_from_obj(source, "arch", space)
    if not str(source).strip():
        raise ArchError("the architecture is empty: give a file, a bundled name (gpunet-1) or an encoded vector")
    if is_timm(source):
        return timm_arch(source)
    path = Path(source)
    kind = _path_kind(path)
    if kind == "dir":
        raise ArchError(f"{source}: is a folder; give an architecture file")
    if kind == "missing":
        bundled = resources.bundled_config(str(source))
        if bundled is not None:
            path = bundled
        elif _VECTOR.fullmatch(str(source)):
            return _decode(parse_vector(str(source)), "vector", space)
        else:
            raise ArchError(f"{_short(source)}: no such file (nor a bundled config name or an encoded vector)")
    text = schema.read_text(path, "architecture", ArchError)
    if _VECTOR.fullmatch(text):
        return _decode(parse_vector(text, str(source)), str(source), space)
    obj = schema.loads(text, str(source), "architecture", ArchError)
    return arch_from_obj(obj, str(source), space)


def _path_kind(path: Path) -> str:
    """"missing" (also for names no file can have), "dir", or "file"."""
    try:
        return "dir" if path.is_dir() else "file" if path.exists() else "missing"
    except OSError:  # e.g. a name longer than the file system allows: a vector, not a path
        return "missing"


def _short(text) -> str:
    text = str(text)
    return text if len(text) <= 80 else text[:77] + "..."


def arch_to_json(arch: Arch) -> dict | list:
    """latbench JSON when the network is stage-wise, else NVIDIA's layer list."""
    return staged_to_json(arch.staged) if arch.staged is not None else arch_to_nvidia(arch)


__all__ = [
    "load_arch", "arch_from_obj", "arch_to_json", "arch_to_nvidia", "arch_from_nvidia",
    "staged_from_json", "staged_to_json", "parse_vector",
]
