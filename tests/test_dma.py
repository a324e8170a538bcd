"""The `dma` dialect: its interpreter copies exactly the strided box the op names
(against NumPy slicing), and the deferred mode turns a schedule that reads a copy's
destination before its wait into wrong numbers (the fault the tiling passes must not
make). The verifier's rules are in tests/filecheck/dialects/dma/ops_invalid.mlir."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr, f32
from xdsl.interpreter import InterpretationError
from xdsl.ir import Block, Region

from edge_opt.dialects import dma, kernel
from edge_opt.ir.session import Session


def _buffer(shape, level: str) -> MemRefType:
    return MemRefType(f32, shape, memory_space=StringAttr(level))


def _row_major(shape) -> list[int]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.insert(0, step)
        step *= n
    return strides


@st.composite
def boxes(draw):
    """A source buffer shape and a strided box in it: per axis a start, a count and a
    step (the NumPy slice the box must equal)."""
    rank = draw(st.integers(1, 3))
    source, starts, counts, steps = [], [], [], []
    for _ in range(rank):
        count, step = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        start = draw(st.integers(0, 3))
        size = start + (count - 1) * step + 1 + draw(st.integers(0, 2))
        source.append(size)
        starts.append(start)
        counts.append(count)
        steps.append(step)
    levels = draw(st.sampled_from([("L2", "L1"), ("L1", "L2"), ("L3", "L2"), ("L2", "L3")]))
    return source, starts, counts, steps, levels


def _copy_box(source, tile, source_shape, starts, counts, steps) -> dma.StartOp:
    """`dma.start` of the box (starts, counts, steps per axis) of a row-major `source`
    into the whole of a row-major `tile`."""
    row = _row_major(source_shape)
    return dma.StartOp(
        source, tile, counts,
        source_strides=[r * s for r, s in zip(row, steps, strict=True)],
        dest_strides=_row_major(counts),
        source_offset=sum(r * b for r, b in zip(row, starts, strict=True)),
    )


def _sliced(source, starts, counts, steps) -> np.ndarray:
    """The box as NumPy slices it: the oracle."""
    return source[tuple(slice(b, b + (n - 1) * s + 1, s)
                        for b, n, s in zip(starts, counts, steps, strict=True))]


def _module(source_shape, counts, starts, steps, levels, read_early: bool) -> ModuleOp:
    """`@f(%src) -> tile`: the box of %src copied into a fresh buffer, and, with
    `read_early`, that buffer copied out before the wait (a wrong schedule)."""
    source_type, tile_type = _buffer(source_shape, levels[0]), _buffer(counts, levels[1])
    block = Block(arg_types=[source_type])
    tile = kernel.AllocOp(tile_type)
    start = _copy_box(block.args[0], tile, source_shape, starts, counts, steps)
    ops = [tile, start]
    result = tile.result
    if read_early:
        early = kernel.AllocOp(tile_type)
        ops += [early, kernel.CopyOp(tile, early)]
        result = early.result
    ops += [dma.WaitOp(start), func.ReturnOp(result)]
    block.add_ops(ops)
    function = func.FuncOp("f", ([source_type], [tile_type]), Region(block))
    module = ModuleOp([function])
    module.verify()
    return module


@settings(max_examples=60)
@given(case=boxes(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["immediate", "deferred"]))
def test_a_copy_moves_the_box_it_names(case, seed, mode):
    source_shape, starts, counts, steps, levels = case
    source = np.random.default_rng(seed).standard_normal(source_shape).astype(np.float32)
    module = _module(source_shape, counts, starts, steps, levels, read_early=False)
    (tile,) = Session(module, dma=mode).run("f", [source])
    expected = _sliced(source, starts, counts, steps)
    assert tile.tobytes() == expected.tobytes()


@settings(max_examples=20)
@given(case=boxes(), seed=st.integers(0, 2**32 - 1))
def test_reading_a_destination_before_its_wait_is_caught_in_deferred_mode(case, seed):
    """The seeded fault: a compute (here a copy) that reads the tile before `dma.wait`.
    Immediate mode cannot see it; deferred mode reads poison (NaN)."""
    source_shape, starts, counts, steps, levels = case
    source = np.random.default_rng(seed).standard_normal(source_shape).astype(np.float32)
    module = _module(source_shape, counts, starts, steps, levels, read_early=True)
    (early,) = Session(module, dma="immediate").run("f", [source])
    assert not np.isnan(early).any()
    (early,) = Session(module, dma="deferred").run("f", [source])
    assert np.isnan(early).all()


def _two_waits_or_none(waits: int) -> ModuleOp:
    source_type, tile_type = _buffer([4], "L2"), _buffer([4], "L1")
    block = Block(arg_types=[source_type])
    tile = kernel.AllocOp(tile_type)
    start = dma.StartOp(block.args[0], tile, [4], [1], [1])
    block.add_ops([tile, start, *(dma.WaitOp(start) for _ in range(waits)),
                   func.ReturnOp(tile)])
    return ModuleOp([func.FuncOp("f", ([source_type], [tile_type]), Region(block))])


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_copy_waited_for_twice_is_an_error(mode):
    with pytest.raises(InterpretationError, match="already waited for"):
        Session(_two_waits_or_none(2), dma=mode).run("f", [np.ones(4, np.float32)])


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_copy_never_waited_for_is_an_error(mode):
    with pytest.raises(InterpretationError, match="1 DMA copy never waited for"):
        Session(_two_waits_or_none(0), dma=mode).run("f", [np.ones(4, np.float32)])


@settings(max_examples=20)
@given(case=boxes(), seed=st.integers(0, 2**32 - 1))
def test_copies_in_flight_together_land_in_their_own_buffers(case, seed):
    """Two copies started before either wait (double buffering), waited in reverse."""
    source_shape, starts, counts, steps, levels = case
    source = np.random.default_rng(seed).standard_normal(source_shape).astype(np.float32)
    source_type, tile_type = _buffer(source_shape, levels[0]), _buffer(counts, levels[1])
    block = Block(arg_types=[source_type])
    tiles = [kernel.AllocOp(tile_type) for _ in range(2)]
    starts_ops = [
        _copy_box(block.args[0], tile, source_shape, starts, counts, steps) for tile in tiles
    ]
    block.add_ops([*tiles, *starts_ops, *(dma.WaitOp(op) for op in reversed(starts_ops)),
                   func.ReturnOp(*tiles)])
    function = func.FuncOp("f", ([source_type], [tile_type] * 2), Region(block))
    first, second = Session(ModuleOp([function]), dma="deferred").run("f", [source])
    expected = _sliced(source, starts, counts, steps)
    assert first.tobytes() == second.tobytes() == expected.tobytes()
