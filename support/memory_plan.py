"""Static memory planning: offsets for buffers with known sizes and lifetimes.

Pure maths, no IR: the `plan-memory` pass turns a scheduled function into `Buffer`s (size
in bytes, first and last op index where the buffer is live) and asks `plan` for offsets in
one arena. Two buffers whose lifetimes overlap must not overlap in memory; the arena's
size is the plan's `peak`.

`lower_bound` is the largest total size of buffers live at one time: no plan can do
better. `plan` runs several placement heuristics (greedy by size, by lifetime, by area, by
start, by breadth, each with best-fit gap selection, as TFLite's and TVM's planners do) and, for small
problems, an exhaustive search over placement orders, and keeps the smallest peak (ties:
the first heuristic in that list, so the result is deterministic).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

EXHAUSTIVE_LIMIT = 7
"""Problems with at most this many buffers are also solved by trying every order."""


@dataclass(frozen=True)
class Buffer:
    """A buffer of `size` bytes, live from op `start` to op `end` (inclusive)."""

    name: str
    size: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.size < 0 or self.end < self.start:
            raise ValueError(f"buffer {self.name}: bad size or lifetime ({self})")

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    peak: int
    strategy: str

    def end(self, buffer: Buffer) -> int:
        return self.offsets[buffer.name] + buffer.size


def align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def lower_bound(buffers: Iterable[Buffer]) -> int:
    """The largest total size of simultaneously live buffers."""
    events: dict[int, int] = {}
    for b in buffers:
        events[b.start] = events.get(b.start, 0) + b.size
        events[b.end + 1] = events.get(b.end + 1, 0) - b.size
    live = best = 0
    for t in sorted(events):
        live += events[t]
        best = max(best, live)
    return best


def naive(buffers: Iterable[Buffer]) -> int:
    """Every buffer in its own place: the size without any reuse."""
    return sum(b.size for b in buffers)


def check_plan(buffers: Sequence[Buffer], plan: Plan) -> None:
    """Raises `ValueError` if two buffers live at the same time overlap in memory."""
    for a, b in itertools.combinations(buffers, 2):
        if a.size and b.size and a.overlaps_in_time(b):
            if plan.offsets[a.name] < plan.end(b) and plan.offsets[b.name] < plan.end(a):
                raise ValueError(
                    f"buffers {a.name} and {b.name} are live at the same time and "
                    "overlap in memory"
                )


def _place(order: Sequence[Buffer], alignment: int) -> tuple[dict[str, int], int]:
    """Places buffers in `order`, each in the smallest free gap (below the current top)
    that fits it among the buffers already placed and live at the same time."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[str, int] = {}
    peak = 0
    for buffer in order:
        conflicts = sorted(
            (offset, offset + b.size)
            for b, offset in placed
            if b.size and b.overlaps_in_time(buffer)
        )
        best_offset, best_gap = None, math.inf
        cursor = 0
        for lo, hi in conflicts:
            gap = lo - cursor
            if gap >= buffer.size and gap < best_gap:
                best_offset, best_gap = cursor, gap
            cursor = max(cursor, align(hi, alignment))
        if best_offset is None:
            best_offset = cursor
        offsets[buffer.name] = best_offset
        placed.append((buffer, best_offset))
        peak = max(peak, best_offset + buffer.size)
    return offsets, peak


def _breadths(buffers: Sequence[Buffer]) -> dict[str, int]:
    """For each buffer, the largest total size of the buffers live with it at one of
    its op indices (the breadth of its most crowded moment)."""
    live: dict[int, int] = {}
    for b in buffers:
        for time in range(b.start, b.end + 1):
            live[time] = live.get(time, 0) + b.size
    return {
        b.name: max(live[time] for time in range(b.start, b.end + 1)) for b in buffers
    }


_ORDERS: dict[str, Callable[[Buffer, dict[str, int]], tuple]] = {
    "greedy-by-size": lambda b, _: (-b.size, b.start, b.name),
    "greedy-by-area": lambda b, _: (-b.size * (b.end - b.start + 1), b.start, b.name),
    "greedy-by-lifetime": lambda b, _: (-(b.end - b.start), -b.size, b.name),
    "greedy-by-start": lambda b, _: (b.start, -b.size, b.name),
    # TFLite's "greedy by breadth": the buffers of the most crowded moments first.
    "greedy-by-breadth": lambda b, breadth: (-breadth[b.name], -b.size, b.start, b.name),
}


def plan(buffers: Sequence[Buffer], alignment: int = 16) -> Plan:
    """The best plan found (see the module docstring); sizes are rounded up to
    `alignment` bytes and offsets are multiples of it."""
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    aligned = [Buffer(b.name, align(b.size, alignment), b.start, b.end) for b in buffers]
    best: Plan | None = None
    breadth = _breadths(aligned)
    for strategy, key in _ORDERS.items():
        offsets, peak = _place(sorted(aligned, key=lambda b: key(b, breadth)), alignment)
        if best is None or peak < best.peak:
            best = Plan(offsets, peak, strategy)
    if len(aligned) <= EXHAUSTIVE_LIMIT and best is not None:
        bound = lower_bound(aligned)
        by_size = sorted(aligned, key=lambda b: _ORDERS["greedy-by-size"](b, breadth))
        for order in itertools.permutations(by_size):
            if best.peak == bound:
                break
            offsets, peak = _place(order, alignment)
            if peak < best.peak:
                best = Plan(offsets, peak, "exhaustive")
    assert best is not None or not buffers
    return best if best is not None else Plan({}, 0, "empty")
