"""Every block key reachable in an encoded space, and vectorised per-network look-ups.

A network of a stage-wise space is a head, per stage a *first* block (it changes channels and
stride) followed by `layers - 1` identical *rest* blocks, and a tail. Each of these is a *slot*.
A slot's block is fixed by a few small integers: the index of its input size, of its input
channels, and of its own searched fields (filters, kernel, expansion, SE, activation). Their
mixed-radix combination is the slot's *code*; a dense table maps codes to global key ids.

`SpaceIndex` builds, once per space:
* the exact set of reachable keys, by dynamic programming over stages on the distinct
  (input size, channels, carried positions) states rather than over networks (the GPUNet space
  holds ~10^23 networks but a few hundred thousand keys);
* per slot, the code -> key-id table (-1 where unreachable);
and returns, for encoded networks X [N, D], each slot's key ids and multiplicities with a few
numpy operations per stage: no Python loop per network.

Pure numpy: the predictor builds on it and must not import torch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial
from functools import lru_cache

import numpy as np

from latbench.blocks import KINDS, BlockSpec
from latbench.blocks.matrix import FIELDS, encode, resolved_skip, row_spec, spec_row
from latbench.space.space import Field

__all__ = ["FIELDS", "SpaceIndex", "index_for"]


@dataclass
class Slot:
    """One position of a block in every network of the space (see module docstring)."""

    name: str
    kind: str
    role: str  # head | first | rest | tail
    stage: int
    stride: int
    own: list  # [(field name, numeric choices array, Field)]
    size: int = 0  # number of codes
    key_ids: np.ndarray = None  # code -> global key id, -1 where unreachable


@dataclass
class _Stage:
    name: str
    stage: int
    kind: str
    stride: int
    fields: dict = field(default_factory=dict)


class SpaceIndex:
    """Reachable keys of `space` and vectorised slot look-ups (see module docstring)."""

    def __init__(self, space):
        self.space = space
        sp = space
        self._stages = [_Stage("head", 0, sp.head.block, sp.head.stride, dict(sp.head.fields))]
        self._stages += [_Stage(f"stage{s.stage}", s.stage, s.block, s.stride, s.fields) for s in sp.stages]
        self.slots: list[Slot] = []
        self._tuples: dict[str, list[np.ndarray]] = {}
        self._enumerate()
        self._build_keys()
        self._ids: dict[tuple, int] | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def _choices(self, name: str, f) -> np.ndarray:
        """Numeric choices of a field (a single entry for a fixed field; a part of each candidate
        for a field a candidate position sets)."""
        values = self.space.dims[f.dim].choices if f.dim >= 0 else (f.value,)
        if f.part:
            values = [c[f.part] for c in values]
        return np.array([encode("kind" if name == "block" else name, v) for v in values], dtype=np.int64)

    def _own(self, st: _Stage) -> list:
        """The stage's block fields: (name, numeric choices, Field), "layers" excepted."""
        return [(k, self._choices(k, f), f) for k, f in st.fields.items() if k != "layers"]

    def _layers(self, st: _Stage) -> tuple:
        return tuple(int(v) for v in self._choices("layers", st.fields["layers"]))

    # -- dynamic programming over stages ------------------------------------------------------
    def _enumerate(self) -> None:
        """Walk the stages over distinct states; record every slot's reachable (code, block)."""
        sp, stages = self.space, self._stages
        later = [{f.dim for s in stages[i + 1:] for f in s.fields.values() if f.dim >= 0}
                 for i in range(len(stages))]
        res = self._choices("resolution", sp.resolution)
        state = {"H": res, "C": np.full(len(res), sp.in_channels, np.int64)}
        self._first_state = np.arange(len(res))  # resolution index -> initial state id
        self._plans = []
        for i, st in enumerate(stages):
            own = self._own(st)
            lf = st.fields.get("layers")
            # Layers a position shares with another stage (a candidate's or a joint position's
            # part, or a layers field another stage refers to) are part of the stage's code, so
            # that the stage is present exactly where that position says; the position is carried
            # on to the stages after it. Layers of the stage's own are branched on instead.
            set_layers = lf is not None and lf.dim >= 0 and (
                lf.part is not None or lf.dim in later[i] or f"p{lf.dim}" in state)
            dims = list(dict.fromkeys([f.dim for _, _, f in own if f.dim >= 0] + ([lf.dim] if set_layers else [])))
            sizes = [sp.dims[d].size for d in dims]
            n_own = int(np.prod(sizes)) if dims else 1
            combos = np.array(list(itertools.product(*map(range, sizes))), dtype=np.int64).reshape(n_own, len(dims))
            S = len(state["H"])
            sid, oid = np.repeat(np.arange(S), n_own), np.tile(np.arange(n_own), S)
            base = sid * n_own + oid
            pick = {d: combos[oid, j] for j, d in enumerate(dims)}
            # A carried position (a field referenced across stages) must agree with the state.
            ok = np.ones(len(base), bool)
            for d in dims:
                if f"p{d}" in state:
                    ok &= state[f"p{d}"][sid] == pick[d]
            idx = [pick[f.dim] if f.dim >= 0 else np.zeros(len(base), np.int64) for _, _, f in own]
            val = {k: c[j] for (k, c, _), j in zip(own, idx)}
            H, C = state["H"][sid], state["C"][sid]
            h_out = np.zeros_like(H)
            for k in np.unique(val["block"]):  # a candidate position may change the kind
                rows = val["block"] == k
                h_out[rows] = list(KINDS.values())[k].out_size(H[rows], val["kernel"][rows], st.stride)
            ok &= h_out >= 1  # an input too small for the kernel makes no network
            stem = st.name == "head"
            role = "head" if stem else "first"
            layers = (1,) if stem else self._layers(st)
            # Per row: may the stage hold 1, 2+ or 0 blocks (all that its layers allow, or the one
            # count its position chose: a skip candidate, a joint depth that leaves it out).
            if set_layers:
                count = self._choices("layers", lf)[pick[lf.dim]]
                some, more, none = ok & (count > 0), ok & (count >= 2), ok & (count == 0)
            else:
                never = np.zeros_like(ok)
                some, more = (ok if max(layers) >= 1 else never), (ok if max(layers) >= 2 else never)
                none = ok if min(layers) == 0 else never
            self._add(st, role, st.stride, own, S * n_own, base[some], H[some], C[some], [j[some] for j in idx])
            carried = {f"p{d}": v[sid] for d, v in ((int(c[1:]), state[c]) for c in state if c[0] == "p")
                       if d in later[i]}
            carried |= {f"p{d}": pick[d] for d in dims if d in later[i]}
            if not stem and max(layers) >= 2:
                self._add(st, "rest", 1, own, S * n_own, base[more], h_out[more], val["filters"][more],
                          [j[more] for j in idx])
            branches = [(True, h_out, val["filters"], some), (False, H, C, none)]
            branches = [b for b in branches if b[3].any()]
            nxt = {"H": np.concatenate([b[1][b[3]] for b in branches]),
                   "C": np.concatenate([b[2][b[3]] for b in branches])}
            nxt |= {c: np.concatenate([v[b[3]] for b in branches]) for c, v in carried.items()}
            names = list(nxt)
            table, inverse = np.unique(np.stack([nxt[k] for k in names], axis=1), axis=0, return_inverse=True)
            # next[base * 2 + nonempty] -> next state id (-1 where unreachable)
            nxt_id = np.full(S * n_own * 2, -1, dtype=np.int64)
            pos = 0
            for nonempty, _, _, rows in branches:
                nxt_id[base[rows] * 2 + int(nonempty)] = inverse.reshape(-1)[pos:pos + int(rows.sum())]
                pos += int(rows.sum())
            if not set_layers and len(branches) == 1:  # never (or always) empty: both flags agree
                other = 1 - int(branches[0][0])
                nxt_id[base[ok] * 2 + other] = nxt_id[base[ok] * 2 + 1 - other]
            self._plans.append((st, dims, sizes, n_own, nxt_id))
            state = {k: table[:, j] for j, k in enumerate(names)}
        tail = _Stage("tail", stages[-1].stage + 1, sp.tail.kind, 1, {"block": Field(value=sp.tail.kind)})
        n = len(state["H"])
        self._add(tail, "tail", 1, [], n, np.arange(n), state["H"], state["C"], [])

    def _add(self, st: _Stage, role: str, stride: int, own, size: int, codes, h, c, idx) -> None:
        """Record a slot's reachable blocks: code, input size, input channels, own field indices."""
        name = st.name if role in ("head", "tail") else f"{st.name}.{role}"
        self.slots.append(Slot(name, st.kind, role, st.stage, stride, own, size=size))
        self._tuples[name] = []
        cols = [codes, h, c] + list(idx)
        self._tuples[name].append(np.stack(cols, axis=1).astype(np.int64).reshape(len(codes), -1))

    # -- keys ------------------------------------------------------------------------------------
    def _build_keys(self) -> None:
        tail = self.space.tail
        rows, codes = [], []
        for slot in self.slots:
            t = np.concatenate(self._tuples.pop(slot.name))
            codes.append(t[:, 0])
            v = {k: choices[t[:, 3 + j]] for j, (k, choices, _) in enumerate(slot.own)}
            full = partial(np.full, len(t), dtype=np.int64)
            is_tail = slot.role == "tail"
            cout = full(tail.out_channels) if is_tail else v["filters"]
            kinds = full(encode("kind", tail.kind)) if is_tail else v["block"]
            skip = np.zeros(len(t), np.int64)
            for k in np.unique(kinds):
                rows_k = kinds == k
                skip[rows_k] = resolved_skip(list(KINDS)[k], slot.stride, t[rows_k, 2], cout[rows_k])
            rows.append(np.stack([
                kinds, t[:, 2], cout, t[:, 1], v.get("kernel", full(tail.kernel)), full(slot.stride),
                v.get("expansion", full(encode("expansion", 1.0))), v.get("se", full(0)),
                v.get("act", full(encode("act", tail.act))), full(tail.classes if is_tail else 0),
                skip, v.get("groups", full(1)), full(int(tail.bias) if is_tail else 1),
            ], axis=1))
        keys, inverse = np.unique(np.concatenate(rows), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        self.key_fields = keys
        start = 0
        for slot, c in zip(self.slots, codes):
            slot.key_ids = np.full(slot.size, -1, dtype=np.int64)
            slot.key_ids[c] = inverse[start:start + len(c)]
            start += len(c)

    @property
    def n_keys(self) -> int:
        return len(self.key_fields)

    def spec(self, key_id: int) -> BlockSpec:
        return row_spec(self.key_fields[key_id])

    def specs(self, key_ids=None) -> list[BlockSpec]:
        ids = range(self.n_keys) if key_ids is None else key_ids
        return [self.spec(int(i)) for i in ids]

    def id_of(self, spec: BlockSpec) -> int:
        """Global key id of a spec, or -1 when the space cannot reach it."""
        if self._ids is None:
            self._ids = {tuple(r): i for i, r in enumerate(self.key_fields.tolist())}
        return self._ids.get(spec_row(spec), -1) if spec.height == spec.width else -1

    # -- per-network look-ups -----------------------------------------------------------------
    def slot_codes(self, X) -> list[tuple[Slot, np.ndarray, np.ndarray]]:
        """For each slot: (slot, code per network, multiplicity per network); X is [N, D].

        `slot.key_ids[code]` is the global key id. Work is a few integer operations per stage
        on contiguous columns, so millions of networks take well under a second.
        """
        X = np.asarray(X)
        n = len(X)
        cols = np.ascontiguousarray(X.T, dtype=np.int64)
        res = self.space.resolution
        state = self._first_state[cols[res.dim]] if res.dim >= 0 else np.zeros(n, np.int64)
        out = []
        slots = iter(self.slots)
        for st, dims, sizes, n_own, nxt in self._plans:
            own = np.zeros(n, np.int64)
            for d, size in zip(dims, sizes):
                own = own * size + cols[d]
            base = state * n_own + own
            first = next(slots)
            if st.name == "head":
                out.append((first, base, np.ones(n, np.int64)))
                state = nxt[base * 2 + 1]
                continue
            lf = st.fields["layers"]
            L = self._choices("layers", lf)[cols[lf.dim]] if lf.dim >= 0 else np.full(n, lf.value)
            out.append((first, base, (L > 0).astype(np.int64)))
            if max(self._layers(st)) >= 2:
                out.append((next(slots), base, np.maximum(L - 1, 0)))
            state = nxt[base * 2 + (L > 0)]
        out.append((next(slots), state, np.ones(n, np.int64)))
        return out

    def network_key_ids(self, X) -> np.ndarray:
        """Distinct key ids needed by the networks X, sorted."""
        ids = [slot.key_ids[code][mult > 0] for slot, code, mult in self.slot_codes(X)]
        return np.unique(np.concatenate(ids))


@lru_cache(maxsize=8)
def index_for(space) -> SpaceIndex:
    """The (cached) index of a space object."""
    return SpaceIndex(space)
