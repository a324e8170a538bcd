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


def _module(source_shape, counts, starts, steps, levels, read_early: bool) -> ModuleOp:
    """`@f(%src) -> tile`: the box of %src copied into a fresh buffer, and, with
    `read_early`, that buffer copied out before the wait (a wrong schedule)."""
    source_type, tile_type = _buffer(source_shape, levels[0]), _buffer(counts, levels[1])
    block = Block(arg_types=[source_type])
    tile = kernel.AllocOp(tile_type)
    row = _row_major(source_shape)
    start = dma.StartOp(
        block.args[0], tile, counts,
        source_strides=[r * s for r, s in zip(row, steps, strict=True)],
        dest_strides=_row_major(counts),
        source_offset=sum(r * b for r, b in zip(row, starts, strict=True)),
    )
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
    expected = source[tuple(slice(b, b + (n - 1) * s + 1, s)
                            for b, n, s in zip(starts, counts, steps, strict=True))]
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


def test_a_copy_waited_for_twice_is_an_error():
    with pytest.raises(InterpretationError, match="already waited for"):
        Session(_two_waits_or_none(2), dma="deferred").run("f", [np.ones(4, np.float32)])


def test_a_copy_never_waited_for_is_an_error():
    with pytest.raises(InterpretationError, match="1 DMA copy never waited for"):
        Session(_two_waits_or_none(0), dma="deferred").run("f", [np.ones(4, np.float32)])
