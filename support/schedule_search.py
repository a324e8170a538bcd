"""Choosing a tile schedule: a cost model from the SoC's data and a search over it.

A `Problem` is one kernel call: its iteration space (`extents`, which dimensions may be
cut, one operand map per operand), each operand's shape, element size and direction,
its FLOPs. A candidate `Schedule` fits when its L1 working set does: every operand's
full tile, twice when double buffered and its window changes during the nest, plus a
partial-result tile for each output that accumulates; each rounded up to the
alignment, as `plan-memory` places them. A scratch operand (a kernel's workspace) is
one L1 tile that no DMA moves.

The cost of a fitting schedule (`Cost.cycles`) is an estimate in cluster cycles:
- DMA: per direction, bytes / bandwidth, plus a setup cost per transfer (one per window
  visited; the bytes are exact: a window is loaded once per visit);
- compute: FLOPs / (cores x FLOP per cycle per core), slowed by a short innermost tile
  (`1 + inner_overhead / innermost length`: loop and pointer overhead per row), plus a
  fixed cost per tile (the kernel call, the fork and the barriers);
- double buffered, DMA and compute overlap: the first tile's loads, then the larger of
  the two; single buffered they add up.

`search` enumerates every schedule (tile sizes from the divisors and powers of two of
each extent, every legal loop order) when there are at most `EXHAUSTIVE_LIMIT`, and
otherwise runs simulated annealing from the largest fitting schedule with a fixed seed
and a fixed number of steps: the same problem gives the same schedule on every run and
machine (a wall-clock budget would not).
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from edge_opt.support.memory_plan import align
from edge_opt.support.tiling import FULL, Halo, Schedule

EXHAUSTIVE_LIMIT = 4000
"""Spaces with at most this many schedules are searched exhaustively."""
ANNEALING_STEPS = 3000


@dataclass(frozen=True)
class Operand:
    shape: tuple[int, ...]
    map: tuple[int, ...]
    itemsize: int
    output: bool
    level: str = "L2"
    """The level its windows come from (L2, or L3 for a staged operand)."""
    halo: Halo | None = None
    """Its sliding-window axis, used when the dimension it follows is cut."""
    scratch: bool = False
    """A kernel's workspace: one L1 buffer of its tile shape, never copied."""


@dataclass(frozen=True)
class Target:
    """The SoC's numbers the cost model uses (`edge_opt.support.socs.Soc.tiling`)."""

    l1_bytes: int
    cores: int
    dma_setup_cycles: float
    read_bytes_per_cycle: float
    """L2 -> L1."""
    write_bytes_per_cycle: float
    """L1 -> L2."""
    flops_per_cycle_per_core: float
    tile_overhead_cycles: float
    inner_overhead: float
    alignment: int = 16
    double_buffer: bool = True


@dataclass(frozen=True)
class Problem:
    extents: tuple[int, ...]
    splittable: tuple[bool, ...]
    operands: tuple[Operand, ...]
    flops: int


@dataclass(frozen=True)
class Cost:
    l1_bytes: int
    read_bytes: int
    write_bytes: int
    transfers: int
    dma_cycles: float
    compute_cycles: float
    cycles: float


def active_halo(schedule: Schedule, operand: Operand) -> Halo | None:
    """The operand's halo when the schedule cuts the dimension it follows (uncut, the
    kernel reads the whole axis with its own padding)."""
    halo = operand.halo
    if halo is None or schedule.counts[operand.map[halo.axis]] == 1:
        return None
    return halo


def operand_map(schedule: Schedule, operand: Operand) -> tuple[int, ...]:
    """The operand's map under `schedule`: a halo axis whose dimension is not cut is
    whole (its length differs from the dimension's)."""
    halo = operand.halo
    if halo is None or active_halo(schedule, operand) is not None:
        return operand.map
    return tuple(FULL if a == halo.axis else d for a, d in enumerate(operand.map))


def tile_bytes(schedule: Schedule, operand: Operand) -> int:
    shape = schedule.tile_shape(operand_map(schedule, operand), operand.shape,
                                active_halo(schedule, operand))
    return math.prod(shape) * operand.itemsize


def accumulates(schedule: Schedule, problem: Problem, operand: Operand) -> bool:
    """Whether an output's tiles sum over a dimension cut into several tiles."""
    followed = set(operand.map)
    return operand.output and not operand.scratch and any(
        problem.splittable[d] and schedule.counts[d] > 1 and d not in followed
        for d in range(len(problem.extents))
    )


def slots(schedule: Schedule, operand: Operand, double_buffer: bool) -> int:
    """L1 buffers an operand needs: two when double buffered and its window changes."""
    changes = schedule.window_count(operand.map) > 1
    return 2 if double_buffer and changes and not operand.scratch else 1


def l1_bytes(schedule: Schedule, problem: Problem, target: Target) -> int:
    total = 0
    for operand in problem.operands:
        size = align(tile_bytes(schedule, operand), target.alignment)
        total += size * slots(schedule, operand, target.double_buffer)
        if accumulates(schedule, problem, operand):
            total += size
    return total


def transferred_bytes(schedule: Schedule, operand: Operand) -> int:
    """Bytes moved for an operand over the nest: each visit of a window moves it once,
    and the windows of one pass over the dimensions it follows tile the operand (a
    scratch operand moves nothing)."""
    if operand.scratch:
        return 0
    followed = [d for d in operand.map if d != FULL]
    passes = schedule.window_count(operand.map) // math.prod(
        schedule.counts[d] for d in followed
    )
    halo = active_halo(schedule, operand)
    if halo is None:
        return passes * math.prod(operand.shape) * operand.itemsize
    # the windows along the halo axis overlap: sum their clipped lengths
    d, length = operand.map[halo.axis], operand.shape[halo.axis]
    rows = 0
    for c in range(schedule.counts[d]):
        start, count = halo.reach(c * schedule.sizes[d],
                                  min(schedule.sizes[d], schedule.extents[d] - c * schedule.sizes[d]))
        rows += min(start + count, length) - max(start, 0)
    return passes * math.prod(operand.shape) // length * rows * operand.itemsize


def cost(schedule: Schedule, problem: Problem, target: Target) -> Cost:
    read = write = transfers = 0
    first = 0.0
    for operand in problem.operands:
        if operand.scratch:
            continue
        moved = transferred_bytes(schedule, operand)
        transfers += schedule.window_count(operand.map)
        if operand.output:
            write += moved
        else:
            read += moved
            first += tile_bytes(schedule, operand) / target.read_bytes_per_cycle
    dma = (read / target.read_bytes_per_cycle + write / target.write_bytes_per_cycle
           + transfers * target.dma_setup_cycles)
    output = next((o for o in problem.operands if o.output), None)
    inner = (schedule.tile_shape(output.map, output.shape)[-1]
             if output is not None and output.shape else 1)
    compute = (problem.flops / (target.cores * target.flops_per_cycle_per_core)
               * (1 + target.inner_overhead / max(inner, 1))
               + schedule.count * target.tile_overhead_cycles)
    cycles = first + max(dma, compute) if target.double_buffer else dma + compute
    return Cost(l1_bytes(schedule, problem, target), read, write, transfers, dma,
                compute, cycles)


def candidate_sizes(extent: int) -> list[int]:
    """Divisors and powers of two of `extent`, and `extent`, ascending."""
    sizes = {d for d in range(1, math.isqrt(extent) + 1) if extent % d == 0}
    sizes |= {extent // d for d in sizes}
    sizes |= {1 << k for k in range(extent.bit_length()) if 1 << k <= extent}
    return sorted(sizes)


def legal(schedule: Schedule, problem: Problem) -> bool:
    """Whether every accumulating output's tiles are consecutive (its summed
    dimensions are visited inside the ones it follows)."""
    return all(
        schedule.accumulation_problem(o.map) is None
        for o in problem.operands if o.output
    )


def _orders(problem: Problem, sizes: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Loop orders that differ in where the cut dimensions go (the uncut ones stay in
    place: their position does not change the nest)."""
    cut = [d for d, (n, s) in enumerate(zip(problem.extents, sizes, strict=True)) if s < n]
    uncut = [d for d in range(len(problem.extents)) if d not in cut]
    for order in itertools.permutations(cut):
        yield (*uncut, *order)


def _space(problem: Problem) -> list[list[int]]:
    return [candidate_sizes(n) if split else [n]
            for n, split in zip(problem.extents, problem.splittable, strict=True)]


def space_size(problem: Problem) -> int:
    return math.prod(len(s) for s in _space(problem)) * math.factorial(
        sum(problem.splittable)
    )


@dataclass(frozen=True)
class Choice:
    schedule: Schedule
    cost: Cost
    method: str
    """`exhaustive`, `annealing`, or `whole` (a single tile)."""
    evaluated: int


class DoesNotFit(Exception):
    """No schedule's working set fits L1; carries the smallest working set found."""

    def __init__(self, smallest: int):
        super().__init__(smallest)
        self.smallest = smallest


def _key(schedule: Schedule, c: Cost) -> tuple:
    return (c.cycles, c.l1_bytes, schedule.order, tuple(-s for s in schedule.sizes))


def exhaustive(problem: Problem, target: Target) -> Choice:
    best: tuple[tuple, Schedule, Cost] | None = None
    smallest, evaluated = math.inf, 0
    for sizes in itertools.product(*_space(problem)):
        for order in _orders(problem, sizes):
            schedule = Schedule(problem.extents, tuple(sizes), order)
            if not legal(schedule, problem):
                continue
            evaluated += 1
            need = l1_bytes(schedule, problem, target)
            smallest = min(smallest, need)
            if need > target.l1_bytes:
                continue
            c = cost(schedule, problem, target)
            key = _key(schedule, c)
            if best is None or key < best[0]:
                best = (key, schedule, c)
    if best is None:
        raise DoesNotFit(int(smallest))
    return Choice(best[1], best[2], "exhaustive", evaluated)


def anneal(problem: Problem, target: Target, seed: int = 0,
           steps: int = ANNEALING_STEPS) -> Choice:
    """Simulated annealing over (size index per dimension, order); starts from the
    smallest tiles (which fit if anything does) and moves one size or swaps two loops."""
    space = _space(problem)
    rng = random.Random(seed)
    index = [0] * len(space)
    order = list(range(len(space)))

    seen: dict[tuple, tuple[Schedule, Cost] | None] = {}

    def evaluate(index: Sequence[int], order: Sequence[int]) -> tuple[Schedule, Cost] | None:
        key = (tuple(index), tuple(order))
        if key not in seen:
            schedule = Schedule(problem.extents,
                                tuple(space[d][i] for d, i in enumerate(index)), tuple(order))
            fits = legal(schedule, problem) and (
                l1_bytes(schedule, problem, target) <= target.l1_bytes)
            seen[key] = (schedule, cost(schedule, problem, target)) if fits else None
        return seen[key]

    current = evaluate(index, order)
    if current is None:
        # the smallest tiles in the default order: try the other orders
        for candidate in itertools.permutations(range(len(space))):
            current = evaluate(index, candidate)
            if current is not None:
                order = list(candidate)
                break
    if current is None:
        smallest = min(l1_bytes(Schedule(problem.extents,
                                         tuple(s[0] for s in space), tuple(o)),
                                problem, target)
                       for o in itertools.permutations(range(len(space))))
        raise DoesNotFit(smallest)
    best = current
    start = current[1].cycles
    movable = [d for d, s in enumerate(space) if len(s) > 1]
    for step in range(steps):
        temperature = start * 0.2 * (1 - step / steps) + 1e-9
        new_index, new_order = list(index), list(order)
        if movable and (len(order) < 2 or rng.random() < 0.8):
            d = rng.choice(movable)
            new_index[d] = min(max(new_index[d] + rng.choice((-2, -1, 1, 2)), 0),
                               len(space[d]) - 1)
        elif len(order) >= 2:
            a, b = rng.sample(range(len(order)), 2)
            new_order[a], new_order[b] = new_order[b], new_order[a]
        candidate = evaluate(new_index, new_order)
        if candidate is None:
            continue
        delta = candidate[1].cycles - current[1].cycles
        if delta <= 0 or rng.random() < math.exp(-delta / temperature):
            index, order, current = new_index, new_order, candidate
            if _key(*current) < _key(*best):
                best = current
    return Choice(best[0], best[1], "annealing", steps)


@functools.lru_cache(maxsize=4096)
def search(problem: Problem, target: Target, seed: int = 0,
           method: str = "auto") -> Choice:
    """The cheapest fitting schedule (module docstring); raises `DoesNotFit`. Memoized:
    a model repeats its layers."""
    if not any(problem.splittable):
        schedule = Schedule.whole(problem.extents)
        need = l1_bytes(schedule, problem, target)
        if need > target.l1_bytes:
            raise DoesNotFit(need)
        return Choice(schedule, cost(schedule, problem, target), "whole", 1)
    if method == "exhaustive" or (method == "auto" and space_size(problem) <= EXHAUSTIVE_LIMIT):
        return exhaustive(problem, target)
    return anneal(problem, target, seed)
