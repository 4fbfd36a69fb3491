"""Search spaces as data (layer_configs/*_space.json) and their integer encoding.

A space file lists, for the head, each stage and the tail, every field as either a fixed value,
a list of choices, a {"min", "max", "step"} range, or a reference to another field
("head.filters": stage 1 of GPUNet shares the head's filters, kernel and activation). Which
fields a stage has comes from its block kind (`BlockKind.space_fields`, plus "layers"); a stage
also fixes its "block" and "stride". Its "encoding" names the order of the searched fields:
position i of an encoded network holds the index into that field's choices, so every position
runs 0 .. n_i - 1.

For the GPUNet space this gives the 41-integer layout of gpunet.md: position 0 resolution,
1-4 [head filters, kernel, activation, stage-1 layers], 5-40 six per stage 2..7
[filters, kernel, expansion, SE, activation, layers].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from latbench import resources, schema
from latbench.arch import Arch, StageSpec, StagedArch
from latbench.blocks import MAX_SIZE, BlockArgs, kind_of
from latbench.errors import SpaceError, SpecError

#: Space field name -> BlockArgs field ("filters" is what files call out_channels).
ARG_OF = {"filters": "out_channels", "kernel": "kernel", "expansion": "expansion", "se": "se",
          "act": "act", "stride": "stride", "classes": "classes"}


def block_args(kind: str, values: dict) -> BlockArgs:
    """BlockArgs of `kind` from space field values ("filters", "kernel", ...)."""
    return BlockArgs(kind=kind, **{ARG_OF[k]: v for k, v in values.items() if k != "layers"})


@dataclass(frozen=True)
class Dim:
    """One searched position: its name ("stage4.filters") and ordered choices."""

    name: str
    choices: tuple

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class Field:
    """How a field of the network gets its value: a position (`dim` >= 0) or a fixed `value`."""

    dim: int = -1
    value: object = None

    def get(self, space: "SearchSpace", vector) -> object:
        return space.dims[self.dim].choices[vector[self.dim]] if self.dim >= 0 else self.value


@dataclass(frozen=True)
class SpaceStage:
    """A stage of the space: its kind, stride, and how each of its fields gets its value (the
    kind's space fields and "layers"; the stem has no "layers")."""

    stage: int
    block: str
    stride: int
    fields: dict  # name -> Field


class SearchSpace:
    """An integer-encoded family of stage-wise networks; see the module docstring."""

    def __init__(self, name, in_channels, resolution, head, stages, tail, dims, source=""):
        self.name, self.in_channels, self.source = name, in_channels, source
        self.resolution: Field = resolution
        self.head: SpaceStage = head
        self.stages: tuple[SpaceStage, ...] = tuple(stages)
        self.tail: BlockArgs = tail
        self.dims: tuple[Dim, ...] = tuple(dims)
        self.cardinalities = np.array([d.size for d in self.dims], dtype=np.int64)

    # -- shape of the space --------------------------------------------------------------------
    @property
    def n_dims(self) -> int:
        return len(self.dims)

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(self.n_dims, dtype=np.int64)

    @property
    def upper(self) -> np.ndarray:
        """Largest valid index per position (inclusive)."""
        return self.cardinalities - 1

    @property
    def size(self) -> int:
        """Number of distinct vectors (an exact Python int)."""
        return int(np.prod([int(c) for c in self.cardinalities], dtype=object))

    def dim_index(self, name: str) -> int:
        for i, d in enumerate(self.dims):
            if d.name == name:
                return i
        raise KeyError(name)

    def random(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """`n` uniformly random valid vectors, shape [n, n_dims], int64."""
        rng = np.random.default_rng(rng)
        return rng.integers(0, self.cardinalities, size=(n, self.n_dims), dtype=np.int64)

    def check(self, vector) -> list[int]:
        """Return `vector` as a list of ints, or raise SpaceError naming the bad position."""
        try:
            values = [int(v) for v in np.asarray(vector).reshape(-1)]
        except (TypeError, ValueError):
            raise SpaceError(f"{self.name}: a vector must hold integers") from None
        if len(values) != self.n_dims:
            raise SpaceError(
                f"{self.name}: a vector has {self.n_dims} integers, got {len(values)}"
            )
        for i, (v, d) in enumerate(zip(values, self.dims)):
            if not 0 <= v < d.size:
                raise SpaceError(
                    f"position {i} ({d.name}) = {v} is outside 0..{d.size - 1} "
                    f"(choices: {', '.join(map(str, d.choices))})"
                )
        return values

    # -- decode / encode -------------------------------------------------------------------------
    def decode_staged(self, vector) -> StagedArch:
        v = self.check(vector)

        def values(s: SpaceStage) -> dict:
            return {k: f.get(self, v) for k, f in s.fields.items()} | {"stride": s.stride}

        head = block_args(self.head.block, values(self.head))
        stages = tuple(StageSpec(s.stage, values(s)["layers"], block_args(s.block, values(s)))
                       for s in self.stages)
        return StagedArch(self.resolution.get(self, v), head, stages, self.tail,
                          self.in_channels, name=f"{self.name}:{','.join(map(str, v))}")

    def decode(self, vector) -> Arch:
        """The network of an encoded vector."""
        return self.decode_staged(vector).expand()

    def encode(self, arch: Arch) -> np.ndarray:
        """The vector of a network of this space; SpaceError names the first field outside it."""
        label = arch.name or "arch"
        st = arch.staged
        if st is None:
            raise SpaceError(f"{label}: not stage-wise (a stage mixes settings), so it has no encoding")
        have_stages = {s.stage: s for s in st.stages}
        extra = sorted(set(have_stages) - {s.stage for s in self.stages})
        if extra:
            want = ", ".join(str(s.stage) for s in self.stages)
            raise SpaceError(f"{label}: stage {extra[0]} is not in the {self.name} space (stages {want})")
        vector: list[int | None] = [None] * self.n_dims
        self._put(vector, self.resolution, st.resolution, f"{label}: resolution")
        self._put(vector, Field(value=self.in_channels), st.in_channels, f"{label}: in_channels")
        self._put_stage(vector, self.head, st.head, f"{label}: head")
        for want in self.stages:
            where = f"{label}: stage{want.stage}"
            have = have_stages.get(want.stage)
            if have is None:  # an absent stage is an empty one; its other fields are free
                self._put(vector, want.fields["layers"], 0, f"{where}.layers")
                continue
            self._put(vector, want.fields["layers"], have.layers, f"{where}.layers")
            self._put_stage(vector, want, have.block, where)
        for k, name in (("kind", "block"), ("out_channels", "filters"), ("classes", "classes"), ("act", "act")):
            self._put(vector, Field(value=getattr(self.tail, k)), getattr(st.tail, k), f"{label}: tail.{name}")
        # Positions nothing in the network determines (fields of an absent stage) encode as 0.
        return np.array([0 if v is None else v for v in vector], dtype=np.int64)

    def _put_stage(self, vector: list, want: SpaceStage, have: BlockArgs, where: str) -> None:
        self._put(vector, Field(value=want.block), have.kind, f"{where}.block")
        self._put(vector, Field(value=want.stride), have.stride, f"{where}.stride")
        for k, f in want.fields.items():
            if k != "layers":
                self._put(vector, f, getattr(have, ARG_OF[k]), f"{where}.{k}")

    def _put(self, vector: list, field: Field, value, where: str) -> None:
        if field.dim < 0:
            if value != field.value:
                raise SpaceError(f"{where} = {value} but the {self.name} space fixes it at {field.value}")
            return
        dim = self.dims[field.dim]
        if value not in dim.choices:
            raise SpaceError(
                f"{where} = {value} is outside the {self.name} space "
                f"(choices: {', '.join(map(str, dim.choices))})"
            )
        index = dim.choices.index(value)
        if vector[field.dim] not in (None, index):
            raise SpaceError(f"{where} = {value} must equal {dim.name} = {dim.choices[vector[field.dim]]}")
        vector[field.dim] = index


# -- loading -------------------------------------------------------------------------------------
#: Limits of a space file: choices of one field, stages, and the fields' own ranges (block fields
#: are checked by the block kind itself: filters, kernel, expansion, SE, activation).
MAX_CHOICES = 256
MAX_STAGES = 64
MAX_LAYERS = 64
NAME_CHARS = 100


def _choices(raw, where: str) -> tuple | None:
    """Choices of a searched field, or None for a fixed value."""
    if isinstance(raw, list):
        if not raw or len(set(map(json.dumps, raw))) != len(raw):
            raise SpaceError(f"{where}: choices must be a non-empty list without repeats")
        if len(raw) > MAX_CHOICES:
            raise SpaceError(f"{where}: {len(raw)} choices; at most {MAX_CHOICES}")
        for v in raw:
            if not isinstance(v, (str, int, float, bool)):
                raise SpaceError(f"{where}: a choice must be a number, a string or true/false, "
                                 f"got {json.dumps(v)[:40]}")
        return tuple(raw)
    if isinstance(raw, dict):
        lo, hi, step = raw.get("min"), raw.get("max"), raw.get("step", 1)
        ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (lo, hi, step))
        if not ints or step < 1 or hi < lo or not set(raw) <= {"min", "max", "step"}:
            raise SpaceError(f"{where}: a range is {{\"min\": int, \"max\": int, \"step\": int > 0}} with min <= max")
        if (hi - lo) // step + 1 > MAX_CHOICES:
            raise SpaceError(f"{where}: the range {lo}..{hi} step {step} has {(hi - lo) // step + 1:,} choices; "
                             f"at most {MAX_CHOICES}")
        return tuple(range(lo, hi + 1, step))
    if raw is None or isinstance(raw, list):
        raise SpaceError(f"{where}: must be a value, a list of choices, a range or a reference, got null")
    return None


def load_space(path: str | Path | None = None) -> "SearchSpace":
    """Load a space file (default: the bundled GPUNet space); a bundled name works too."""
    if path is None:
        return _load_cached(str(resources.config_dir() / "gpunet_space.json"))
    if not str(path).strip():
        raise SpaceError("--space is empty: give a bundled name (gpunet, tiny) or a space file")
    p = Path(path)
    try:
        exists = p.exists()
    except OSError:  # a name no file can have
        exists = False
    if not exists:
        bundled = resources.bundled_config(f"{path}_space") or resources.bundled_config(str(path))
        if bundled is None:
            raise SpaceError(f"{path}: no such space file (bundled: gpunet, tiny)")
        p = bundled
    schema.check_input(p, "space", SpaceError)
    return _load_cached(str(p.resolve()))


@lru_cache(maxsize=16)
def _load_cached(path: str) -> "SearchSpace":
    obj = schema.read_json(path, "space", SpaceError)
    try:
        return space_from_obj(obj, path)
    except SpecError as err:
        raise SpaceError(f"{path}: {err}") from None


def _stage_fields(kind: str, with_layers: bool) -> tuple[str, ...]:
    return kind_of(kind).space_fields + (("layers",) if with_layers else ())


def _kind(name, where: str, role: str) -> str:
    try:
        kind = kind_of(name)
    except SpecError as err:
        raise SpaceError(f"{where}: {err}") from None
    if kind.role != role:
        raise SpaceError(f"{where}: a {kind.name} block cannot be the {role} of a network")
    return kind.name


def space_from_obj(obj: dict, source: str = "space") -> SearchSpace:
    """Build a SearchSpace from its JSON object; positions follow obj["encoding"]. Every field,
    choice and limit is checked (SpaceError naming the file and field)."""
    top = schema.fields(obj, source, {"name": str, "resolution": object, "head": dict, "stages": list,
                                      "tail": dict, "encoding": list},
                        {"description": (str, ""), "in_channels": (int, 3), "source": (str, "")}, error=SpaceError)
    if not top["name"].strip() or len(top["name"]) > NAME_CHARS or "\n" in top["name"]:
        raise SpaceError(f"{source}: name: a short name of one line (at most {NAME_CHARS} characters)")
    schema.number(top["in_channels"], f"{source}: in_channels", 1, 1 << 16, integer=True, error=SpaceError)
    order = top["encoding"]
    for i, name in enumerate(order):
        schema.check_type(name, str, f"{source}: encoding[{i}]", SpaceError)
    if len(set(order)) != len(order):
        raise SpaceError(f"{source}: encoding names a field twice")
    if not 1 <= len(top["stages"]) <= MAX_STAGES:
        raise SpaceError(f"{source}: stages: between 1 and {MAX_STAGES} stages, got {len(top['stages'])}")
    head_obj = top["head"]
    head_kind = _kind(head_obj.get("block", "head"), f"{source}: head.block", "stem")
    raw_fields: dict[str, object] = {"resolution": top["resolution"]}
    stage_objs = [("head", head_kind, head_obj, False)]
    last = 0
    for i, st in enumerate(top["stages"]):
        where = f"{source}: stages[{i}]"
        st = schema.fields(st, where, {"stage": int, "block": str}, {"stride": (int, 1)}, error=SpaceError, extra=True)
        if not last < st["stage"] <= MAX_STAGES:
            raise SpaceError(f"{where}.stage: stage numbers increase from 1 to at most {MAX_STAGES}, got {st['stage']}")
        last = st["stage"]
        stage_objs.append((f"stage{st['stage']}", _kind(st["block"], f"{where}.block", "body"), st, True))
    for name, kind, s, with_layers in stage_objs:
        allowed = set(_stage_fields(kind, with_layers)) | {"stage", "block", "stride"}
        unknown = sorted(set(s) - allowed)
        if unknown:
            raise SpaceError(f"{source}: {name}: a {kind} stage has no field {unknown[0]!r} "
                             f"(fields: {', '.join(sorted(allowed))})")
        schema.number(s.get("stride", 1), f"{source}: {name}.stride", 1, 2, integer=True, error=SpaceError)
        if with_layers and "layers" not in s:
            raise SpaceError(f"{source}: {name}: missing field 'layers'")
        raw_fields |= {f"{name}.{k}": s.get(k, _default(k)) for k in _stage_fields(kind, with_layers)}
    searched = {name for name, raw in raw_fields.items() if len(_choices(raw, f"{source}: {name}") or ()) > 1}
    if set(order) != searched:
        extra, missing = sorted(set(order) - searched), sorted(searched - set(order))
        raise SpaceError(f"{source}: encoding must list each searched field once "
                         f"(not searched: {extra}; missing: {missing})")
    dims = [Dim(name, _choices(raw_fields[name], f"{source}: {name}")) for name in order]
    index = {d.name: i for i, d in enumerate(dims)}

    def field(name: str, seen: tuple = ()) -> Field:
        raw = raw_fields[name]
        if isinstance(raw, str) and "." in raw:  # a reference to another field
            if raw not in raw_fields or raw in seen or raw == name:
                raise SpaceError(f"{source}: {name} refers to unknown field {raw!r}")
            return field(raw, seen + (name,))
        if name in index:
            return Field(dim=index[name])
        choices = _choices(raw, name)
        return Field(value=choices[0] if choices else raw)

    def stage(name: str, number: int, kind: str, s: dict, with_layers: bool) -> SpaceStage:
        return SpaceStage(number, kind, s.get("stride", 1),
                          {k: field(f"{name}.{k}") for k in _stage_fields(kind, with_layers)})

    head = stage("head", 0, head_kind, head_obj, False)
    stages = [stage(f"stage{s['stage']}", s["stage"], kind, s, True) for (_, kind, s, _) in stage_objs[1:]]
    resolution = field("resolution")
    values = lambda f: dims[f.dim].choices if f.dim >= 0 else (f.value,)  # noqa: E731
    for v in values(resolution):
        schema.number(v, f"{source}: resolution", 1, MAX_SIZE, integer=True, error=SpaceError)
    for s in [head] + stages:
        _check_stage(s, values, f"{source}: {'head' if s.stage == 0 else f'stage{s.stage}'}")
    for s in stages:
        if s.stride != 1 and s.fields["layers"].dim >= 0 and 0 in dims[s.fields["layers"].dim].choices:
            raise SpaceError(f"{source}: stage {s.stage} has stride {s.stride} and may have 0 layers; "
                             "a strided stage needs at least one layer")
    tail = schema.fields(top["tail"], f"{source}: tail", {"filters": int},
                         {"classes": (int, 1000), "act": (str, "relu"), "block": (str, "tail")}, error=SpaceError)
    _kind(tail["block"], f"{source}: tail.block", "classifier")
    try:
        tail_args = BlockArgs(kind=tail["block"], out_channels=tail["filters"], classes=tail["classes"],
                              act=tail["act"], kernel=1)
    except SpecError as err:
        raise SpaceError(f"{source}: tail: {err}") from None
    return SearchSpace(top["name"], top["in_channels"], resolution, head, stages, tail_args, dims, source)


def _check_stage(s: SpaceStage, values, where: str) -> None:
    """Every choice of every field of a stage is one its block kind accepts (each checked with the
    other fields at their first choice), and layers lie in [0, MAX_LAYERS]."""
    first = {k: values(f)[0] for k, f in s.fields.items() if k != "layers"}
    for name, f in s.fields.items():
        for v in values(f):
            if name == "layers":
                schema.number(v, f"{where}.layers", 0, MAX_LAYERS, integer=True, error=SpaceError)
                continue
            try:
                block_args(s.block, first | {name: v, "stride": s.stride})
            except SpecError as err:
                raise SpaceError(f"{where}.{name}: choice {json.dumps(v)}: {err}") from None


def _default(name: str):
    """A stage field the file leaves out takes BlockArgs' default ("layers" has none)."""
    defaults = {"kernel": 3, "expansion": 1.0, "se": 0, "act": "relu", "stride": 1}
    return defaults.get(name)
