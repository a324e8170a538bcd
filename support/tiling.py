"""Tile schedules: pure maths, no IR.

A kernel call's iteration space has one extent per dimension (rows, output features,
channels, ...). A `Schedule` cuts each dimension into tiles of `sizes[d]` elements (the
last tile of a dimension is ragged when the size does not divide the extent) and visits
the tiles in a loop nest whose `order` lists the dimensions outermost first. Tiles are
numbered `0 .. count - 1` in visiting order.

Each operand of the kernel sees the iteration space through an operand map: per axis of
the operand, the dimension it follows, or `FULL` (-1) for an axis that every tile sees
whole (a broadcast axis, the reduced axis of a norm). The *window* of tile `t` on an
operand is the box of the operand that tile reads or writes. Consecutive tiles share a
window when they differ only in dimensions the operand does not follow and that are
visited inside every dimension it does follow: `window_stride` tiles in a row share it,
so a window is loaded at the first of them and stored at the last (an output that does
not follow a tiled dimension sums over it: its window accumulates).

An axis may follow a dimension through a sliding window (`Halo`: a convolution's input
rows, which overlap from one tile of output rows to the next): the tile's elements
`[a, b)` of the dimension read elements `[a * stride - before, (b - 1) * stride - before
+ span)` of the axis. The window is that range clipped to the axis; the kernel reads the
unclipped range from its L1 slot, whose rows outside the axis are padding (`padded`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

FULL = -1
"""In an operand map: the axis is whole in every tile."""


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Halo:
    """A sliding-window axis of an operand (module docstring): `axis` of the operand
    follows its dimension with `stride`, each element reading `span` elements of the
    axis starting `before` elements early."""

    axis: int
    stride: int
    span: int
    before: int

    def problem(self, operand_map: Sequence[int], length: int) -> str | None:
        """Why this halo does not fit an operand with this map whose axis has `length`
        elements, or None."""
        if not 0 <= self.axis < len(operand_map) or operand_map[self.axis] == FULL:
            return f"halo axis {self.axis} does not follow a dimension of the map"
        if self.stride < 1 or self.span < 1 or not 0 <= self.before < self.span:
            return (f"halo (stride {self.stride}, span {self.span}, before {self.before}) "
                    "needs stride >= 1 and 0 <= before < span")
        if length < 1:
            return "halo axis is empty"
        return None

    def reach(self, start: int, length: int) -> tuple[int, int]:
        """The first element and the number of elements that elements `[start, start +
        length)` of the dimension read (unclipped: may start before 0 or end beyond the
        axis)."""
        return start * self.stride - self.before, (length - 1) * self.stride + self.span


def halo_of(values: Sequence[int]) -> Halo | None:
    """A halo from its IR form (axis, stride, span, before), or None for `()`."""
    return Halo(*values) if values else None


@dataclass(frozen=True)
class Schedule:
    extents: tuple[int, ...]
    sizes: tuple[int, ...]
    order: tuple[int, ...]
    """Dimensions, outermost loop first."""

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why this is not a schedule, or None."""
        if len(self.sizes) != len(self.extents):
            return f"{len(self.sizes)} tile sizes for {len(self.extents)} dimensions"
        if sorted(self.order) != list(range(len(self.extents))):
            return f"order {list(self.order)} is not a permutation of the dimensions"
        for d, (n, size) in enumerate(zip(self.extents, self.sizes, strict=True)):
            if n < 1 or not 1 <= size <= n:
                return f"dimension {d}: tile size {size} is not in [1, {n}]"
        return None

    @staticmethod
    def whole(extents: Sequence[int]) -> Schedule:
        """One tile: the whole iteration space."""
        return Schedule(tuple(extents), tuple(extents), tuple(range(len(extents))))

    @cached_property
    def counts(self) -> tuple[int, ...]:
        """Tiles per dimension."""
        return tuple(ceil_div(n, s) for n, s in zip(self.extents, self.sizes, strict=True))

    @cached_property
    def count(self) -> int:
        return math.prod(self.counts)

    @cached_property
    def steps(self) -> tuple[int, ...]:
        """Per dimension, the tiles one step of it spans (the product of the tile counts
        of the loops inside it): tile coordinate d of tile t is t // steps[d] % counts[d]."""
        steps, inner = [0] * len(self.order), 1
        for d in reversed(self.order):
            steps[d] = inner
            inner *= self.counts[d]
        return tuple(steps)

    def coords(self, tile: int) -> tuple[int, ...]:
        """The tile coordinate along each dimension of tile number `tile`."""
        if not 0 <= tile < self.count:
            raise IndexError(f"tile {tile} of {self.count}")
        return tuple(tile // step % n for step, n in zip(self.steps, self.counts, strict=True))

    def ragged(self, tile: int) -> tuple[bool, ...]:
        """Per dimension, whether tile `tile` is the short last tile of it."""
        return tuple(
            (c + 1) * s > n
            for c, s, n in zip(self.coords(tile), self.sizes, self.extents, strict=True)
        )

    def window_stride(self, operand_map: Sequence[int]) -> int:
        """How many consecutive tiles share each window of an operand with this map."""
        followed = [d for d in operand_map if d != FULL and self.counts[d] > 1]
        # the innermost followed dimension steps by the fewest tiles
        return min(self.steps[d] for d in followed) if followed else self.count

    def window_index(self, operand_map: Sequence[int], tile: int) -> int:
        """The ordinal of tile `tile`'s window among the windows the nest visits."""
        return tile // self.window_stride(operand_map)

    def is_first_of_window(self, operand_map: Sequence[int], tile: int) -> bool:
        return tile % self.window_stride(operand_map) == 0

    def is_last_of_window(self, operand_map: Sequence[int], tile: int) -> bool:
        return (tile + 1) % self.window_stride(operand_map) == 0

    def window_count(self, operand_map: Sequence[int]) -> int:
        return self.count // self.window_stride(operand_map)

    def padded(self, operand_map: Sequence[int], shape: Sequence[int], tile: int,
               halo: Halo | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(offsets, lengths) per axis of the box tile `tile` reads of an operand of
        `shape`, a halo axis unclipped (its offset may be negative, its end beyond the
        axis)."""
        coords = self.coords(tile)
        offsets, lengths = [], []
        for axis, d in enumerate(operand_map):
            if d == FULL:
                offsets.append(0)
                lengths.append(shape[axis])
                continue
            start = coords[d] * self.sizes[d]
            length = min(self.sizes[d], self.extents[d] - start)
            if halo is not None and axis == halo.axis:
                start, length = halo.reach(start, length)
            offsets.append(start)
            lengths.append(length)
        return tuple(offsets), tuple(lengths)

    def window(self, operand_map: Sequence[int], shape: Sequence[int], tile: int,
               halo: Halo | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(offsets, lengths) per axis of tile `tile`'s box of an operand of `shape`
        (a halo axis clipped to the operand)."""
        offsets, lengths = self.padded(operand_map, shape, tile, halo)
        if halo is None:
            return offsets, lengths
        a = halo.axis
        first = max(offsets[a], 0)
        end = min(offsets[a] + lengths[a], shape[a])
        return (tuple(first if i == a else o for i, o in enumerate(offsets)),
                tuple(end - first if i == a else n for i, n in enumerate(lengths)))

    def interior(self, operand_map: Sequence[int], shape: Sequence[int], tile: int,
                 halo: Halo) -> tuple[int, int, int]:
        """Along the halo axis of tile `tile`'s padded box: (padding before, elements
        inside the operand, padding after)."""
        lengths = self.padded(operand_map, shape, tile, halo)[1]
        before = self.padding_before(operand_map, tile, halo)
        inside = self.window(operand_map, shape, tile, halo)[1][halo.axis]
        return before, inside, lengths[halo.axis] - before - inside

    def padding_before(self, operand_map: Sequence[int], tile: int, halo: Halo) -> int:
        """Elements of tile `tile`'s padded box before the start of the halo axis."""
        d = operand_map[halo.axis]
        return max(-halo.reach(self.coords(tile)[d] * self.sizes[d], 1)[0], 0)

    def tile_shape(self, operand_map: Sequence[int], shape: Sequence[int],
                   halo: Halo | None = None) -> tuple[int, ...]:
        """The shape of a full (not ragged) window of an operand of `shape`; a halo
        axis unclipped (the slot the kernel reads)."""
        result = [shape[a] if d == FULL else self.sizes[d] for a, d in enumerate(operand_map)]
        if halo is not None:
            result[halo.axis] = halo.reach(0, result[halo.axis])[1]
        return tuple(result)

    def accumulation_problem(self, operand_map: Sequence[int]) -> str | None:
        """Why an output with this map cannot accumulate over the dimensions it does not
        follow (its tiles must be consecutive: those dimensions inside the ones it
        follows), or None."""
        followed = {d for d in operand_map if d != FULL and self.counts[d] > 1}
        summed = {d for d in range(len(self.extents))
                  if d not in followed and self.counts[d] > 1}
        if not followed or not summed:
            return None
        innermost_followed = max(self.order.index(d) for d in followed)
        outer = sorted(d for d in summed if self.order.index(d) < innermost_followed)
        if outer:
            return (f"dimension {outer[0]} is summed but visited outside dimension "
                    f"{self.order[innermost_followed]} of the output")
        return None


def check_map(operand_map: Sequence[int], shape: Sequence[int],
              extents: Sequence[int], halo: Halo | None = None) -> str | None:
    """Why `operand_map` (with `halo`) does not fit an operand of `shape` in a space of
    `extents` (a halo axis may have any length)."""
    if len(operand_map) != len(shape):
        return f"map {list(operand_map)} has {len(operand_map)} axes, the operand {len(shape)}"
    if halo is not None:
        problem = halo.problem(operand_map, shape[halo.axis] if halo.axis < len(shape) else 0)
        if problem:
            return problem
    for axis, d in enumerate(operand_map):
        if d == FULL:
            continue
        if not 0 <= d < len(extents):
            return f"map {list(operand_map)}: no dimension {d}"
        if halo is not None and axis == halo.axis:
            continue
        if shape[axis] != extents[d]:
            return (f"map {list(operand_map)}: axis {axis} has {shape[axis]} elements, "
                    f"dimension {d} has {extents[d]}")
    followed = [d for d in operand_map if d != FULL]
    if len(set(followed)) != len(followed):
        return f"map {list(operand_map)} follows a dimension twice"
    return None
