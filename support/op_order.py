"""An order of a function's ops that lowers the peak of live bytes (OLLA-style
operator reordering, as a search over topological orders).

The model (`Graph`): op `v` may run once the ops in `deps[v]` have; it creates
buffers (none for views, parameters, stores), each of which lives until the last op
that reads it has run (forever if `pinned`: a result). While `v` runs, its inputs and
its outputs are live; an output may take over an input buffer of the same size that
dies at `v` (`in_place`: element-wise kernels write over an operand), and then adds
nothing.

`order` starts from the given order and lowers its peak window by window: it takes the
ops within `window` places of the op where the peak is, and searches their orders
(the ops before and after stay): step by step, all orders of k of the window's ops
are compared by the set of ops they ran, and of two that ran the same set the one with
the lower peak goes on — a dynamic programme over down-sets, exact while the number of
sets per step stays at most `exact_limit`, beyond which the `beam` best sets (lowest
peak so far, then fewest live bytes) go on. A better window order is kept and the
search moves to the new peak; it stops when the peak's window cannot be improved. A
graph of at most 2 `window` + 1 ops is one window: its search is global (exact within
the limit). Everything is deterministic (ties go to the given order), and the result
is never worse than the given order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

EXACT_LIMIT = 256
"""Sets of ops run per step up to which a window's search is exact."""
BEAM = 16
"""Sets kept per step beyond `EXACT_LIMIT`."""
WINDOW = 40
"""Ops on each side of the peak that a window reorders."""


@dataclass(frozen=True)
class Graph:
    """Ops 0..n-1 in their given order and the buffers they create and read (see the
    module docstring): `creates[v]` and `reads[v]` are buffer indices, `size[b]` is
    buffer b's bytes, `in_place[v]` pairs (created buffer, buffers it may take over).
    """

    deps: Sequence[Sequence[int]]
    creates: Sequence[Sequence[int]]
    reads: Sequence[Sequence[int]]
    size: Sequence[int]
    in_place: Sequence[Sequence[tuple[int, Sequence[int]]]] = ()
    pinned: frozenset[int] = frozenset()
    readers: list[int] = field(init=False, repr=False)
    users: list[list[int]] = field(init=False, repr=False)
    dep_masks: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.deps)
        readers = [0] * len(self.size)
        users: list[list[int]] = [[] for _ in range(n)]
        masks = [0] * n
        for v in range(n):
            for b in self.reads[v]:
                readers[b] |= 1 << v
            for u in self.deps[v]:
                masks[v] |= 1 << u
                users[u].append(v)
        object.__setattr__(self, "readers", readers)
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "dep_masks", masks)

    def __len__(self) -> int:
        return len(self.deps)

    def step(self, done: int, live: int, v: int) -> tuple[int, int]:
        """Running op `v` after the ops in `done` with `live` bytes live: the bytes live
        while it runs, and after."""
        after = done | (1 << v)
        dying = {b for b in self.reads[v]
                 if b not in self.pinned and self.readers[b] & ~after == 0}
        taken: set[int] = set()
        for created, candidates in (self.in_place[v] if v < len(self.in_place) else ()):
            for b in candidates:
                if b in dying and b not in taken and self.size[b] == self.size[created]:
                    taken.add(b)
                    break
        added = sum(self.size[c] for c in self.creates[v]) - sum(
            self.size[b] for b in taken)
        during = live + added
        freed = sum(self.size[b] for b in dying - taken)
        freed += sum(self.size[c] for c in self.creates[v]
                     if c not in self.pinned and self.readers[c] == 0)
        return during, during - freed

    def peak(self, sequence: Sequence[int]) -> int:
        """The peak of live bytes of running the ops in `sequence`."""
        done = live = peak = 0
        for v in sequence:
            during, live = self.step(done, live, v)
            peak = max(peak, during)
            done |= 1 << v
        return peak


@dataclass(frozen=True)
class _State:
    peak: int
    live: int
    done: int
    ready: tuple[int, ...]
    sequence: tuple[int, ...]

    def key(self) -> tuple[int, int, tuple[int, ...]]:
        return (self.peak, self.live, self.sequence)


def order(graph: Graph, exact_limit: int = EXACT_LIMIT, beam: int = BEAM,
          window: int = WINDOW) -> tuple[list[int], bool]:
    """A topological order of `graph`'s ops of least (or lower) peak, and whether every
    window was searched exactly (see the module docstring)."""
    sequence = list(range(len(graph)))
    exact = True
    while True:
        during = _during(graph, sequence)
        peak = max(during, default=0)
        p = during.index(peak) if during else 0
        lo, hi = max(0, p - window), min(len(sequence), p + window + 1)
        done = 0
        for v in sequence[:lo]:
            done |= 1 << v
        live = _live_after(graph, sequence[:lo])
        part, part_exact = _search(graph, sequence[lo:hi], done, live, exact_limit, beam)
        candidate = sequence[:lo] + part + sequence[hi:]
        if max(_during(graph, candidate), default=0) >= peak:
            return sequence, exact
        sequence, exact = candidate, exact and part_exact


def _during(graph: Graph, sequence: Sequence[int]) -> list[int]:
    done = live = 0
    result = []
    for v in sequence:
        during, live = graph.step(done, live, v)
        result.append(during)
        done |= 1 << v
    return result


def _live_after(graph: Graph, sequence: Sequence[int]) -> int:
    done = live = 0
    for v in sequence:
        _, live = graph.step(done, live, v)
        done |= 1 << v
    return live


def _search(graph: Graph, ops: Sequence[int], done: int, live: int, exact_limit: int,
            beam: int) -> tuple[list[int], bool]:
    """The order of `ops` (run after the ops in `done`, `live` bytes live) of least peak
    while they run: exact while at most `exact_limit` sets of ops are reachable per
    step, else the `beam` best."""
    members = 0
    for v in ops:
        members |= 1 << v
    start = tuple(v for v in ops if graph.dep_masks[v] & ~done == 0)
    states = {done: _State(0, live, done, start, ())}
    exact = True
    for _ in ops:
        following: dict[int, _State] = {}
        for state in states.values():
            for v in state.ready:
                during, after = graph.step(state.done, state.live, v)
                mask = state.done | (1 << v)
                candidate = _State(max(state.peak, during), after, mask,
                                   _ready(graph, state.ready, v, mask, members),
                                   (*state.sequence, v))
                kept = following.get(mask)
                if kept is None or candidate.key() < kept.key():
                    following[mask] = candidate
        if len(following) > exact_limit:
            exact = False
            best = sorted(following.values(), key=_State.key)[:beam]
            following = {s.done: s for s in best}
        states = following
    (final,) = states.values()
    return list(final.sequence), exact


def _ready(graph: Graph, ready: tuple[int, ...], v: int, done: int, members: int
           ) -> tuple[int, ...]:
    new = [u for u in graph.users[v]
           if members >> u & 1 and graph.dep_masks[u] & ~done == 0]
    return tuple(sorted({*(u for u in ready if u != v), *new}))
