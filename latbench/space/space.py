"""Search spaces as data (layer_configs/*_space.json) and their integer encoding.

A space file lists, for the head, each stage and the tail, every field as either a fixed value,
a list of choices, a {"min", "max", "step"} range, or a reference to another field
("head.filters": stage 1 of GPUNet shares the head's filters, kernel and activation). Which
fields a stage has comes from its block kind (`BlockKind.space_fields`, plus "layers"); a stage
also fixes its "block" and "stride". Its "encoding" names the order of the searched fields:
position i of an encoded network holds the index into that field's choices, so every position
runs 0 .. n_i - 1.

A top-level "joint" list names positions that set fields of several stages at once, each
{"name": NAME, "choices": [{"stageN.field": value, ...}, ...]}: Once-for-All's depth is one
position per unit whose choices set the "layers" of its optional blocks together (depth 2, 3, 4
keep a prefix of the unit's blocks), so each depth is drawn as often as the others.

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

#: Space field name -> BlockArgs field ("filters" is what files call out_channels, "block" kind).
ARG_OF = {"block": "kind", "filters": "out_channels", "kernel": "kernel", "expansion": "expansion", "se": "se",
          "act": "act", "stride": "stride", "classes": "classes", "groups": "groups"}
#: What a candidate of a candidate position may set.
CANDIDATE_FIELDS = ("block", "filters", "kernel", "expansion", "se", "act", "groups", "layers")


def block_args(values: dict) -> BlockArgs:
    """BlockArgs from space field values ("block", "filters", "kernel", ...)."""
    return BlockArgs(**{ARG_OF[k]: v for k, v in values.items() if k != "layers"})


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
    """How a field of the network gets its value: a position (`dim` >= 0), or a `part` of the
    candidate a candidate position chose, or a fixed `value`."""

    dim: int = -1
    value: object = None
    part: str | None = None

    def get(self, space: "SearchSpace", vector) -> object:
        if self.dim < 0:
            return self.value
        choice = space.dims[self.dim].choices[vector[self.dim]]
        return choice[self.part] if self.part else choice


@dataclass(frozen=True)
class SpaceStage:
    """A stage of the space: its stride, its kind (None when a candidate position chooses it), and
    how each of its fields gets its value ("block", its kinds' space fields and "layers"; the stem
    has no "layers")."""

    stage: int
    block: str | None
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

        head = block_args(values(self.head))
        stages = tuple(StageSpec(s.stage, values(s)["layers"], block_args(values(s))) for s in self.stages)
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
        narrowed: dict[int, list[int]] = {}  # candidate or joint position -> choices that still agree
        self._put(vector, self.resolution, st.resolution, f"{label}: resolution")
        self._put(vector, Field(value=self.in_channels), st.in_channels, f"{label}: in_channels")
        self._put_stage(vector, self.head, st.head, f"{label}: head", narrowed)
        for want in self.stages:
            where = f"{label}: stage{want.stage}"
            have = have_stages.get(want.stage)
            if have is None:  # an absent stage is an empty one; its other fields are free
                self._put_stage(vector, want, None, where, narrowed, 0)
                continue
            self._put_stage(vector, want, have.block, where, narrowed, have.layers)
        for k, name in (("kind", "block"), ("out_channels", "filters"), ("classes", "classes"), ("act", "act")):
            self._put(vector, Field(value=getattr(self.tail, k)), getattr(st.tail, k), f"{label}: tail.{name}")
        # Positions nothing in the network determines (fields of an absent stage) encode as 0.
        return np.array([0 if v is None else v for v in vector], dtype=np.int64)

    def _put_stage(self, vector: list, want: SpaceStage, have: BlockArgs | None, where: str,
                   narrowed: dict, layers: int | None = None) -> None:
        """Put a stage's values (`have` None: an absent stage, only its layers count)."""
        values = {"layers": layers} if have is None else \
            {k: getattr(have, ARG_OF[k]) for k in want.fields if k != "layers"} | {"layers": layers}
        if have is not None:
            self._put(vector, Field(value=want.stride), have.stride, f"{where}.stride")
        for dim in dict.fromkeys(f.dim for f in want.fields.values() if f.part):
            given = {f.part: values[k] for k, f in want.fields.items() if f.part and f.dim == dim and k in values}
            self._put_choice(vector, dim, given, where, narrowed)
        for k, f in want.fields.items():
            if not f.part and k in values and values[k] is not None:
                self._put(vector, f, values[k], f"{where}.{k}")

    def _put_choice(self, vector: list, dim_index: int, values: dict, where: str, narrowed: dict) -> None:
        """Narrow a candidate or joint position to the choices whose parts agree with `values`
        (a joint position is narrowed once per stage it sets); the first that is left is taken."""
        dim = self.dims[dim_index]
        before = narrowed.get(dim_index, range(dim.size))
        matches = [i for i in before if all(dim.choices[i][k] == v for k, v in values.items())]
        if not matches:
            shown = ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in values.items())
            also = " together with the stages it set before" if dim_index in narrowed else ""
            raise SpaceError(f"{where}: no choice of {dim.name} in the {self.name} space has {shown}{also}")
        narrowed[dim_index] = matches
        vector[dim_index] = matches[0]

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


def _choices(raw, where: str, objects: bool = False) -> tuple | None:
    """Choices of a searched field, or None for a fixed value; `objects` admits JSON objects as
    choices (the candidates of a candidate position)."""
    if isinstance(raw, list):
        if not raw or len({json.dumps(v, sort_keys=True) for v in raw}) != len(raw):
            raise SpaceError(f"{where}: choices must be a non-empty list without repeats")
        if len(raw) > MAX_CHOICES:
            raise SpaceError(f"{where}: {len(raw)} choices; at most {MAX_CHOICES}")
        for v in raw:
            if not isinstance(v, (str, int, float, bool)) and not (objects and isinstance(v, dict)):
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
    if raw is None:
        raise SpaceError(f"{where}: must be a value, a list of choices, a range or a reference, got null")
    return None


def load_space(path: str | Path | None = None) -> "SearchSpace":
    """Load a space file (default: the bundled GPUNet space); a bundled name works too."""
    if path is None:
        return _load_cached(str(resources.config_dir() / "gpunet_space.json"))
    if not str(path).strip():
        raise SpaceError(f"--space is empty: give a bundled name ({', '.join(bundled_spaces())}) or a space file")
    p = Path(path)
    try:
        exists = p.exists()
    except OSError:  # a name no file can have
        exists = False
    if not exists:
        name = str(path).replace("-", "_")
        bundled = resources.bundled_config(f"{name}_space") or resources.bundled_config(str(path))
        if bundled is None:
            raise SpaceError(f"{path}: no such space file (bundled: {', '.join(bundled_spaces())})")
        p = bundled
    schema.check_input(p, "space", SpaceError)
    return _load_cached(str(p.resolve()))


def bundled_spaces() -> list[str]:
    """Names of the spaces in layer_configs/ (gpunet, tiny, ofa-mbv3, fbnet, ...)."""
    return sorted(p.stem.removesuffix("_space").replace("_", "-") for p in resources.config_dir().glob("*_space.json"))


@lru_cache(maxsize=16)
def _load_cached(path: str) -> "SearchSpace":
    obj = schema.read_json(path, "space", SpaceError)
    try:
        return space_from_obj(obj, path)
    except SpecError as err:
        raise SpaceError(f"{path}: {err}") from None


def _stage_fields(kinds: list[str], with_layers: bool) -> tuple[str, ...]:
    """The fields of a stage whose blocks may be of `kinds`: "block", their space fields, layers."""
    names = ["block"] + [f for k in kinds for f in kind_of(k).space_fields]
    return tuple(dict.fromkeys(names + (["layers"] if with_layers else [])))


def _candidates(raw, where: str, role: str) -> list[dict] | None:
    """The candidates of a stage as the file gives them (each checked for its fields and its
    block kind), or None when the stage has none."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(c, dict) for c in raw):
        raise SpaceError(f"{where}.candidates: a non-empty list of objects")
    for i, c in enumerate(raw):
        unknown = sorted(set(c) - set(CANDIDATE_FIELDS))
        if unknown:
            raise SpaceError(f"{where}.candidates[{i}]: unknown field {unknown[0]!r} "
                             f"(fields: {', '.join(CANDIDATE_FIELDS)})")
        if "block" in c:
            _kind(c["block"], f"{where}.candidates[{i}].block", role)
    return raw


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
    choice and limit is checked (SpaceError naming the file and field).

    A stage may give "candidates": a list of objects each setting some of block, filters, kernel,
    expansion, se, act, groups and layers; one searched position (NAME.candidate) then chooses
    among them, and the fields they set take the chosen candidate's values (FBNet's nine blocks).
    """
    top = schema.fields(obj, source, {"name": str, "resolution": object, "head": dict, "stages": list,
                                      "tail": dict, "encoding": list},
                        {"description": (str, ""), "in_channels": (int, 3), "source": (str, ""), "joint": (list, [])},
                        error=SpaceError)
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
    head = dict(top["head"])
    head["block"] = _kind(head.get("block", "head"), f"{source}: head.block", "stem")
    stage_objs = [("head", f"{source}: head", head, "stem")]
    last = 0
    for i, st in enumerate(top["stages"]):
        where = f"{source}: stages[{i}]"
        st = schema.fields(st, where, {"stage": int}, {"stride": (int, 1), "block": (str, None)},
                           error=SpaceError, extra=True)
        if not last < st["stage"] <= MAX_STAGES:
            raise SpaceError(f"{where}.stage: stage numbers increase from 1 to at most {MAX_STAGES}, got {st['stage']}")
        last = st["stage"]
        if st["block"] is not None:
            st["block"] = _kind(st["block"], f"{where}.block", "body")
        elif "candidates" not in st:
            raise SpaceError(f"{where}: missing field 'block'")
        stage_objs.append((f"stage{st['stage']}", where, st, "body"))

    joints = _joints(top["joint"], source, {name for name, _, _, role in stage_objs if role == "body"})
    raw_fields: dict[str, object] = {"resolution": top["resolution"]}
    parts: dict[str, tuple[str, str]] = {}  # field name -> (candidate or joint position, part)
    positions: set[str] = set()  # the candidate and joint positions
    for name, where, s, role in stage_objs:
        with_layers = role == "body"
        cands = _candidates(s.get("candidates"), where, role)
        kinds = [k for k in [s.get("block")] + [c.get("block") for c in cands or ()] if k]
        fields = _stage_fields(kinds, with_layers)
        allowed = set(fields) | {"stage", "stride", "candidates"}
        unknown = sorted(set(s) - allowed)
        if unknown:
            raise SpaceError(f"{where}: a {'/'.join(dict.fromkeys(kinds))} stage has no field {unknown[0]!r} "
                             f"(fields: {', '.join(sorted(allowed))})")
        schema.number(s.get("stride", 1), f"{where}.stride", 1, 2, integer=True, error=SpaceError)
        # A candidate stage is one layer unless a candidate says otherwise (FBNet's skip sets 0).
        if with_layers and "layers" not in s and cands is None and f"{name}.layers" not in joints.fields:
            raise SpaceError(f"{where}: missing field 'layers'")
        for k in fields:
            if f"{name}.{k}" in joints.fields and (k in s or any(k in c for c in cands or ())):
                raise SpaceError(f"{where}.{k}: set by the joint position {joints.fields[f'{name}.{k}']!r}; "
                                 "leave it out of the stage")
        base = {k: s.get(k, _default(k)) for k in fields}
        if base["block"] is None:  # a candidate without a kind takes the first kind the candidates name
            base["block"] = kinds[0]
        if cands is not None:
            position = f"{name}.candidate"
            positions.add(position)
            raw_fields[position] = [base | c for c in cands]
            for k in sorted({k for c in cands for k in c}):
                parts[f"{name}.{k}"] = (position, k)
        raw_fields |= {f"{name}.{k}": v for k, v in base.items()}
    for field_name, position in joints.fields.items():
        if field_name not in raw_fields:
            raise SpaceError(f"{source}: joint {position!r}: no stage field {field_name!r}")
        parts[field_name] = (position, field_name)
    for position, choices in joints.choices.items():
        if position in raw_fields:
            raise SpaceError(f"{source}: joint {position!r}: the name of a stage field; name the position otherwise")
        raw_fields[position] = choices
        positions.add(position)
    searched = {name for name, raw in raw_fields.items()
                if name not in parts and len(_choices(raw, f"{source}: {name}", name in positions) or ()) > 1}
    if set(order) != searched:
        extra, missing = sorted(set(order) - searched), sorted(searched - set(order))
        raise SpaceError(f"{source}: encoding must list each searched field once "
                         f"(not searched: {extra}; missing: {missing})")
    dims = [Dim(name, _choices(raw_fields[name], f"{source}: {name}", name in positions)) for name in order]
    index = {d.name: i for i, d in enumerate(dims)}

    def field(name: str, seen: tuple = ()) -> Field:
        if name in parts:
            position, part = parts[name]
            if position not in index:  # a position of one choice searches nothing: its values are fixed
                return Field(value=raw_fields[position][0][part])
            return Field(dim=index[position], part=part)
        raw = raw_fields[name]
        if isinstance(raw, str) and "." in raw:  # a reference to another field
            if raw not in raw_fields or raw in seen or raw == name or raw in positions:
                raise SpaceError(f"{source}: {name} refers to unknown field {raw!r}")
            return field(raw, seen + (name,))
        if name in index:
            return Field(dim=index[name])
        choices = _choices(raw, name)
        return Field(value=choices[0] if choices else raw)

    def stage(name: str, number: int, s: dict) -> SpaceStage:
        names = [k.split(".", 1)[1] for k in raw_fields if k.startswith(name + ".") and k not in positions]
        fields = {k: field(f"{name}.{k}") for k in names}
        kind = fields["block"].value if fields["block"].dim < 0 else None
        return SpaceStage(number, kind, s.get("stride", 1), fields)

    head_stage = stage("head", 0, head)
    stages = [stage(name, s["stage"], s) for name, _, s, _ in stage_objs[1:]]
    resolution = field("resolution")
    for v in (dims[resolution.dim].choices if resolution.dim >= 0 else (resolution.value,)):
        schema.number(v, f"{source}: resolution", 1, MAX_SIZE, integer=True, error=SpaceError)
    for (_, where, _, _), s in zip(stage_objs, [head_stage] + stages):
        _check_stage(s, dims, where)
    for s in stages:
        f = s.fields["layers"]
        if s.stride != 1 and f.dim >= 0 and 0 in _layer_values(dims[f.dim], f):
            raise SpaceError(f"{source}: stage {s.stage} has stride {s.stride} and may have 0 layers; "
                             "a strided stage needs at least one layer")
    tail = schema.fields(top["tail"], f"{source}: tail", {"filters": int},
                         {"classes": (int, 1000), "act": (str, "relu"), "block": (str, "tail"), "bias": (bool, True)},
                         error=SpaceError)
    _kind(tail["block"], f"{source}: tail.block", "classifier")
    try:
        tail_args = BlockArgs(kind=tail["block"], out_channels=tail["filters"], classes=tail["classes"],
                              act=tail["act"], kernel=1, bias=tail["bias"])
    except SpecError as err:
        raise SpaceError(f"{source}: tail: {err}") from None
    return SearchSpace(top["name"], top["in_channels"], resolution, head_stage, stages, tail_args, dims, source)


def _check_stage(s: SpaceStage, dims: list[Dim], where: str) -> None:
    """Every choice of every field of a stage, and every candidate, is one its block kind accepts
    (each checked with the other fields at their first choice), and layers lie in [0, MAX_LAYERS]."""
    def values(f: Field) -> list:
        return _layer_values(dims[f.dim], f) if f.dim >= 0 else [f.value]

    first = {k: values(f)[0] for k, f in s.fields.items()}
    # (what is checked, the fields it changes): candidates and joint choices first, so that a bad
    # value one of them sets is named there, not at the first plain field checked with it.
    trials: list[tuple[str, dict]] = []
    for dim in sorted({f.dim for f in s.fields.values() if f.part and f.dim >= 0}):
        own = [k for k, f in s.fields.items() if f.part and f.dim == dim]
        label = f"{where}.candidates" if dims[dim].name.endswith(".candidate") else f"{where}: {dims[dim].name}"
        trials += [(f"{label}[{i}]", {k: c[s.fields[k].part] for k in own}) for i, c in enumerate(dims[dim].choices)]
    for name, f in s.fields.items():
        if not f.part:
            trials += [(f"{where}.{name}: choice {json.dumps(v)}", {name: v}) for v in values(f)]
    for label, change in trials:
        values_now = first | change
        schema.number(values_now.get("layers", 1), f"{label}: layers", 0, MAX_LAYERS, integer=True, error=SpaceError)
        try:
            block_args(values_now | {"stride": s.stride})
        except SpecError as err:
            raise SpaceError(f"{label}: {err}") from None


@dataclass(frozen=True)
class _Joints:
    """A space file's joint positions: choices by position name, and the position of each field
    they set."""

    choices: dict  # position -> list of {field: value}
    fields: dict  # "stageN.field" -> position


def _joints(raw: list, source: str, body_stages: set[str]) -> _Joints:
    """The "joint" list of a space file, checked: each position names the same fields of body
    stages in every choice, and no field belongs to two positions."""
    choices, fields = {}, {}
    for i, j in enumerate(raw):
        where = f"{source}: joint[{i}]"
        j = schema.fields(j, where, {"name": str, "choices": list}, error=SpaceError)
        name = j["name"]
        if not name.strip() or name in choices or len(name) > NAME_CHARS or not name.isprintable():
            raise SpaceError(f"{where}.name: a short name on one line that no other joint position has")
        options = _choices(j["choices"], f"{where}.choices", objects=True)
        if not all(isinstance(c, dict) and c for c in options) or len({tuple(sorted(c)) for c in options}) != 1:
            raise SpaceError(f"{where}.choices: objects that each set the same stage fields")
        for field_name in options[0]:
            stage, _, k = field_name.partition(".")
            if stage not in body_stages or k not in CANDIDATE_FIELDS or k == "block":
                raise SpaceError(f"{where}: {field_name[:60]!r} is not a field of a stage "
                                 f"(stageN.{'/'.join(f for f in CANDIDATE_FIELDS if f != 'block')})")
            if field_name in fields:
                raise SpaceError(f"{where}: {field_name} is set by {fields[field_name]!r} already")
            fields[field_name] = name
        choices[name] = list(options)
    return _Joints(choices, fields)


def _layer_values(dim: Dim, f: Field) -> list:
    return [c[f.part] for c in dim.choices] if f.part else list(dim.choices)


def _default(name: str):
    """A stage field the file leaves out takes BlockArgs' default ("layers" has none)."""
    defaults = {"kernel": 3, "expansion": 1.0, "se": 0, "act": "relu", "stride": 1, "groups": 1, "layers": 1}
    return defaults.get(name)
