"""Which blocks to measure: key sets from a space, networks, a Sobol sample, or a grid file.

Grid files (layer_configs/*_grid.json) describe block sets explicitly::

    {"name": "factors", "base": {BlockSpec fields},
     "vary":    {"act": [...], "kernel": [...], "resolution": [...], "filters": [...]},
     "product": {"expansion": [...], "se": [...]},
     "keys":    ["irb-i32-o32-...", ...]}

"vary" changes one field of the base at a time (a factor study), "product" takes the cartesian
product, "keys" lists canonical keys. "resolution" sets height and width, "filters" sets in and
out channels together (the block stays residual). Any subset of the three may be given.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace
from pathlib import Path

from latbench import resources
from latbench.arch_io import load_arch
from latbench.errors import LatbenchError, SpecError
from latbench.space import index_for, sample
from latbench.spec import BlockSpec, parse_key

_SPEC_FIELDS = {f.name for f in fields(BlockSpec)}
_ALIASES = {"resolution": ("height", "width"), "filters": ("in_channels", "out_channels")}


def unique(specs) -> list[BlockSpec]:
    """Specs without repeats, in order of first appearance."""
    seen, out = set(), []
    for s in specs:
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out


def arch_specs(sources, space=None) -> list[BlockSpec]:
    """The blocks the given networks need."""
    return unique(b for src in sources for b in load_arch(src, space).blocks)


def sample_specs(space, n: int, seed: int = 0) -> list[BlockSpec]:
    """The blocks of `n` Sobol-sampled networks of `space`."""
    index = index_for(space)
    return index.specs(index.network_key_ids(sample(space, n, seed)))


def space_specs(space) -> list[BlockSpec]:
    """Every block reachable in `space` (the GPUNet space has 229,610)."""
    return index_for(space).specs()


def _apply(base: dict, field: str, value, where: str) -> dict:
    targets = _ALIASES.get(field, (field,))
    if not set(targets) <= _SPEC_FIELDS:
        raise LatbenchError(f"{where}: unknown field {field!r} (use BlockSpec fields, resolution or filters)")
    return base | {t: value for t in targets}


def _spec(values: dict, where: str) -> BlockSpec:
    unknown = set(values) - _SPEC_FIELDS
    if unknown:
        raise LatbenchError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    try:
        return BlockSpec(**values)
    except (SpecError, TypeError) as err:
        raise LatbenchError(f"{where}: {err}") from None


#: Blocks one grid file may name: far more than a factor study needs, far fewer than a typo in a
#: "product" section (five lists of 60 values) would otherwise start measuring.
MAX_GRID_BLOCKS = 100_000


def _read_grid(path: str | Path) -> dict:
    """The JSON of a grid file, or of a bundled grid by name ("factor_grid")."""
    p = Path(path)
    try:
        local = p.is_file()
    except OSError:
        local = False
    return resources.read_json(p if local else resources.bundled_config(str(path)) or p, "grid")


def grid_specs(path: str | Path) -> list[BlockSpec]:
    """Blocks of a grid file (see module docstring); errors name the file and the entry."""
    obj = _read_grid(path)
    if not isinstance(obj, dict) or not ({"base", "keys"} & set(obj)):
        raise LatbenchError(f"{path}: a grid is a JSON object with \"base\" (+ \"vary\"/\"product\") or \"keys\"")
    unknown = set(obj) - {"name", "description", "base", "vary", "product", "keys"}
    if unknown:
        raise LatbenchError(f"{path}: unknown field {sorted(unknown)[0]!r}")
    keys = obj.get("keys", [])
    if not isinstance(keys, list):
        raise LatbenchError(f"{path}: keys: expected a list of block keys")
    vary = _lists(obj.get("vary", {}), f"{path}: vary")
    product = _lists(obj.get("product", {}), f"{path}: product")
    count = len(keys) + 1 + sum(len(v) for _, v in vary) + math.prod(len(v) for _, v in product)
    if count > MAX_GRID_BLOCKS:
        raise LatbenchError(f"{path}: the grid names {count:,} blocks; at most {MAX_GRID_BLOCKS:,}")
    specs: list[BlockSpec] = []
    for key in keys:
        try:
            specs.append(parse_key(key))
        except SpecError as err:
            raise LatbenchError(f"{path}: keys: {err}") from None
    if "base" in obj:
        base = obj["base"]
        if not isinstance(base, dict):
            raise LatbenchError(f"{path}: base: expected an object of block fields")
        specs.append(_spec(base, f"{path}: base"))
        for field, values in vary:
            for v in values:
                specs.append(_spec(_apply(base, field, v, f"{path}: vary"), f"{path}: vary.{field}={v}"))
        prod = product
        for combo in itertools.product(*[vals for _, vals in prod]) if prod else []:
            values = dict(base)
            for (field, _), v in zip(prod, combo):
                values = _apply(values, field, v, f"{path}: product")
            specs.append(_spec(values, f"{path}: product {dict(zip([f for f, _ in prod], combo))}"))
    if not specs:
        raise LatbenchError(f"{path}: the grid names no blocks")
    return unique(specs)


def _lists(obj, where: str) -> list[tuple[str, list]]:
    if not isinstance(obj, dict) or not all(isinstance(v, list) and v for v in obj.values()):
        raise LatbenchError(f"{where}: expected an object mapping each field to a non-empty list")
    return list(obj.items())


def factor_levels(path: str | Path) -> tuple[BlockSpec, dict[str, list[BlockSpec]]]:
    """The base block and, per varied factor, the blocks of its levels (for factor charts)."""
    grid_specs(path)  # validates the whole grid with errors that name the entry
    obj = _read_grid(path)
    base = BlockSpec(**obj["base"])
    return base, {f: [replace(base, **{t: v for t in _ALIASES.get(f, (f,))}) for v in values]
                  for f, values in obj.get("vary", {}).items()}
