"""L1 tiles of the fused weight updates (`fuse-weight-updates`): `tile-l1` cuts their
output rows and input columns only, never the dimensions the gradient sums over (SGD
with weight decay is not linear in the gradient, and each tile updates its weight
window in place), and gives each tile an L1 workspace that no DMA moves.

The oracle is the untiled buffer level. A tiled fused update equals it to `TIGHT`, not
bit for bit: each element's sum is over the same uncut dimensions, but the interpreter
computes a convolution's weight gradient with NumPy's `einsum` (BLAS), whose summation
order may change with the slice of channels it is given (the C kernel's order per
element does not). Random linear and convolution updates (leading row axes, stride,
padding, dilation, weight decay > 0) under random ragged schedules, double or single
buffered, in both DMA modes (deferred: a copy lands only at its wait, so a weight
window read before it is written back gives NaN); the schedule search on small L1
budgets; seeded faults (a rule that cuts the summed rows, a weight map that is off) are
caught; the tiled step in C equals the interpreter; CCT2's fused train-full step on the
GAP9 build fits GAP9's L2 with its weights and equals the tensor level.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import deeploy_model
from hypothesis import event, given, settings
from hypothesis import strategies as st
from plan_checks import (
    RANDOM_TILING_TARGET,
    TIGHT,
    assert_same_training,
    assert_valid_plan,
    mse_labels,
    tile_randomly,
    train_or_reject,
    training_models,
)
from test_c_tiling import assert_c_equals_interpreter
from test_fuse_weight_updates import _conv_linear_model
from test_tiling import assert_kernels_on_l1, tiled_spec
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import dma, kernel, tile, train
from edge_opt.dialects.base import ints
from edge_opt.dialects.kernel import memory_level
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.memory_report import memory_figures
from edge_opt.ir.session import Session, get_function
from edge_opt.ir.tiling import RULES, IterationSpace, iteration_space
from edge_opt.passes.tile_l1 import problem_of, tile_op
from edge_opt.support import schedule_search
from edge_opt.support.schedule_search import Choice
from edge_opt.support.tiling import FULL, Schedule
from edge_opt.testing import ForwardBuilder, apply_passes

FUSED_KERNELS = (kernel.LinearGradWeightSgdKernelOp, kernel.Conv2dGradWeightSgdKernelOp)
LR = 0.1


def _update(b: ForwardBuilder, make) -> ModuleOp:
    """`@forward(dy, x)`: the fused update of parameter @w, stored."""
    new = b.op(make(*b.block.args), "w_new")
    b.block.add_op(train.StoreOp(new, "w"))
    return b.module()


def linear_update(rows: tuple[int, ...], out: int, inputs: int, decay: float,
                  seed: int) -> tuple[ModuleOp, list[np.ndarray]]:
    b = ForwardBuilder((*rows, out), (*rows, inputs), seed=seed, dtype=np.float32)
    w = b.param("w", (out, inputs))
    module = _update(b, lambda dy, x: train.LinearGradWeightSgdOp(
        dy, x, w, LR, decay, chunk_rows=1))
    return module, list(b.inputs.values())


def conv_update(n: int, c: int, hw: tuple[int, int], o: int, k: tuple[int, int],
                conv: dict, decay: float, seed: int) -> tuple[ModuleOp, list[np.ndarray]]:
    x_shape, w_shape = [n, c, *hw], [o, c, *k]
    probe = Block(arg_types=[TensorType(f32, x_shape)])
    dy_shape = train.Conv2dGradWeightOp(
        probe.args[0], probe.args[0], TensorType(f32, w_shape), **conv
    ).forward_shape(x_shape, w_shape)
    b = ForwardBuilder(dy_shape, x_shape, seed=seed, dtype=np.float32)
    w = b.param("w", w_shape)
    module = _update(b, lambda dy, x: train.Conv2dGradWeightSgdOp(
        dy, x, w, LR, decay, chunk_rows=min(2, o), **conv))
    return module, list(b.inputs.values())


@st.composite
def fused_updates(draw) -> tuple[ModuleOp, list[np.ndarray]]:
    """A random linear or convolution fused update, weight decay > 0."""
    decay = draw(st.sampled_from([0.01, 0.3]))
    seed = draw(st.integers(0, 2**16))
    if draw(st.booleans()):
        rows = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
        return linear_update(rows, draw(st.integers(1, 9)), draw(st.integers(1, 12)),
                             decay, seed)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    spans = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    padding = [draw(st.integers(0, spans[a % 2] - 1)) for a in range(4)]
    hw = tuple(draw(st.integers(max(spans[a] - padding[a] - padding[a + 2], 1), 7))
               for a in range(2))
    conv = {"stride": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
            "padding": tuple(padding), "dilation": dilation}
    return conv_update(draw(st.integers(1, 2)), draw(st.integers(1, 3)), hw,
                       draw(st.integers(1, 5)), (kh, kw), conv, decay, seed)


def updated_weight(module: ModuleOp, args: list[np.ndarray], mode: str = "immediate"
                   ) -> np.ndarray:
    session = Session(module, dma=mode)  # type: ignore[arg-type]
    session.run("forward", args)
    return np.asarray(session.params["w"])


def assert_close_weights(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Within `TIGHT`; returns whether bit for bit."""
    rtol, atol = TIGHT[np.dtype(np.float32)]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    return actual.tobytes() == expected.tobytes()


def fused_loops(module: ModuleOp) -> list[tile.ForOp]:
    return [op for op in module.walk() if isinstance(op, tile.ForOp)
            and any(isinstance(k, FUSED_KERNELS) for k in op.body.walk())]


# --------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(fused_updates())
def test_rule_cuts_rows_and_columns_only(case):
    """Dimensions: the weight's two leading axes, both cut; dy and x whole along the
    summed axes; the weight read and written (and the workspace) with one map."""
    module, _ = case
    (op,) = [o for o in apply_passes("bufferize", module).walk()
             if isinstance(o, FUSED_KERNELS)]
    space = iteration_space(op)
    weight = op.inputs[2].type.get_shape()  # type: ignore[attr-defined]
    assert space.extents == tuple(weight[:2]) and space.splittable == (True, True)
    dy_map, x_map, w_map, new_map, workspace_map = space.maps
    assert w_map == new_map == workspace_map == (0, 1, *(FULL,) * (len(weight) - 2))
    assert set(dy_map) == {FULL, 0} and set(x_map) == {FULL, 1}
    assert dy_map[-1 if len(dy_map) != 4 else 1] == 0


# --------------------------------------------------------------------------------------
# Equivalence under random schedules and the search
# --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(fused_updates(), st.integers(0, 2**32 - 1), st.booleans(),
       st.sampled_from(["immediate", "deferred"]))
def test_tiled_update_equals_the_untiled(case, seed: int, double_buffer: bool, mode: str):
    module, args = case
    buffers = apply_passes("bufferize", module)
    db = str(double_buffer).lower()
    tiled = apply_passes(f"insert-dma{{double-buffer={db}}},plan-memory{{soc=gap9}}",
                         tile_randomly(buffers, random.Random(seed)))
    assert_kernels_on_l1(tiled)
    assert_valid_plan(tiled)
    (loop,) = fused_loops(tiled)
    count = tile.schedule_of(loop.schedule).count
    event(f"{'several tiles' if count > 1 else 'one tile'}")
    bitwise = assert_close_weights(updated_weight(tiled, args, mode),
                                   updated_weight(buffers, args))
    event("bitwise" if bitwise else "within TIGHT")


def _workspaces(module: ModuleOp) -> list[kernel.AllocOp]:
    return [op for op in module.walk() if isinstance(op, kernel.AllocOp)
            and (op.result.name_hint or "").startswith("workspace")]


def test_the_workspace_is_an_l1_tile_that_no_dma_moves():
    """The L2 workspace is gone; the tile's is an L1 buffer of the weight's tile shape
    (chunk_rows = the tile's rows), read and written by the kernel only."""
    module, _ = conv_update(2, 4, (6, 6), 8, (3, 3), {"padding": (1, 1, 1, 1)}, 0.01, 0)
    buffers = apply_passes("bufferize", module)
    assert [memory_level(a.result.type) for a in _workspaces(buffers)] == ["L2"]
    tiled = apply_passes("tile-l1{soc=gap9 l1-bytes=6000},insert-dma", buffers)
    (loop,) = fused_loops(tiled)
    schedule = tile.schedule_of(loop.schedule)
    assert schedule.count > 1
    (workspace,) = _workspaces(tiled)
    assert memory_level(workspace.result.type) == "L1"
    assert workspace.result.type.get_shape() == (  # type: ignore[attr-defined]
        *schedule.sizes, 3, 3)
    (fused,) = [op for op in loop.body.walk() if isinstance(op, FUSED_KERNELS)]
    assert fused.chunk_rows.value.data == schedule.sizes[0]  # type: ignore[attr-defined]
    copied = {v for op in tiled.walk() if isinstance(op, dma.StartOp) for v in op.operands}
    slots = {u.operation.result for u in workspace.result.uses}  # type: ignore[attr-defined]
    assert slots and not slots & copied


@pytest.mark.parametrize("l1", [2048, 4096, 16384])
@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_searched_schedules_equal_the_untiled(l1: int, mode: str):
    module, args = conv_update(2, 5, (7, 6), 6, (3, 2),
                               {"stride": (2, 1), "padding": (1, 0, 2, 1)}, 0.05, 1)
    buffers = apply_passes("bufferize", module)
    tiled = apply_passes(f"tile-l1{{soc=gap9 l1-bytes={l1}}},insert-dma,"
                         "plan-memory{soc=gap9}", buffers)
    assert_valid_plan(tiled)
    assert tile.schedule_of(fused_loops(tiled)[0].schedule).count > 1 or l1 == 16384
    assert_close_weights(updated_weight(tiled, args, mode), updated_weight(buffers, args))


def test_single_buffered_when_only_that_fits():
    """dy and x whole along 600 rows (2,400 B each) with one feature per tile: double
    buffered that is over 10,000 B, single buffered under 6,000 B."""
    module, args = linear_update((600,), 3, 3, 0.01, 2)
    buffers = apply_passes("bufferize", module)
    tiled = apply_passes("tile-l1{soc=gap9 l1-bytes=6000},insert-dma,plan-memory{soc=gap9}",
                         buffers)
    (loop,) = fused_loops(tiled)
    assert tile.SINGLE_BUFFER_ATTR in loop.schedule.owner.attributes  # type: ignore[union-attr]
    for mode in ("immediate", "deferred"):
        assert_close_weights(updated_weight(tiled, args, mode), updated_weight(buffers, args))


def test_a_summed_extent_too_large_for_l1_names_the_pass_to_drop():
    module, _ = linear_update((2000,), 4, 4, 0.01, 3)
    with pytest.raises(PassFailedException,
                       match=r"kernel.linear_grad_weight_sgd in @forward does not fit L1.*"
                             r"run without fuse-weight-updates"):
        apply_passes("bufferize,tile-l1{soc=gap9 l1-bytes=4096}", module)


@settings(max_examples=15, deadline=None)
@given(training_models(batch=(1, 3, 5), max_dim=7), st.sampled_from([512, 2048, 16384]),
       st.booleans(), st.sampled_from(["immediate", "deferred"]), st.integers(0, 2**16))
def test_tiled_fused_training_step_equals_the_tensor_level(model, l1: int,
                                                          double_buffer: bool, mode: str,
                                                          seed: int):
    tensor = train_or_reject("train-full{loss=mse lr=0.05 weight-decay=0.01}", model.module)
    fused = apply_passes("fuse-weight-updates{chunk-bytes=64}", tensor)
    try:
        tiled = apply_passes(tiled_spec(l1, double_buffer), fused)
    except PassFailedException as e:
        assert "does not fit L1" in str(e)
        event("an op does not fit this budget")
        return
    event(f"fused loops: {min(len(fused_loops(tiled)), 2)}")
    assert_kernels_on_l1(tiled)
    inputs = list(model.inputs.values())
    assert_same_training(tensor, tiled, [*inputs, mse_labels(tensor, seed)], inputs,
                         steps=2, dma=mode)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Seeded faults are caught
# --------------------------------------------------------------------------------------


def _cut_summed_rows(op: kernel.KernelOp) -> IterationSpace:
    """A faulty rule: a linear layer's rows R (summed) cut too, the weight in place."""
    dy, _, w = op.inputs
    rows = dy.type.get_shape()[0]  # type: ignore[attr-defined]
    out, inputs = w.type.get_shape()  # type: ignore[attr-defined]
    maps = ((0, 1), (0, 2), (1, 2), (1, 2), (1, 2))
    return IterationSpace((rows, out, inputs), maps, (True, True, True))


def _tile_with(buffers: ModuleOp, sizes: tuple[int, ...],
               order: tuple[int, ...] = (0, 1)) -> ModuleOp:
    """`buffers` with its fused kernel tiled under the given schedule, in L1."""
    tiled = buffers.clone()
    (op,) = [o for o in tiled.walk() if isinstance(o, FUSED_KERNELS)]
    problem = problem_of(op)
    schedule = Schedule(problem.extents, sizes, order)
    cost = schedule_search.cost(schedule, problem, RANDOM_TILING_TARGET)
    tile_op(op, Choice(schedule, cost, "test", 1), problem)
    return apply_passes("insert-dma,plan-memory{soc=gap9}", tiled)


def test_a_rule_that_cuts_the_summed_rows_is_caught(monkeypatch):
    """With the rows cut each row tile applies SGD to its partial gradient over the
    weight the previous tile updated: weight decay is applied once per tile."""
    module, args = linear_update((6,), 4, 5, 0.3, 4)
    buffers = apply_passes("bufferize", module)
    expected = updated_weight(buffers, args)
    assert_close_weights(updated_weight(_tile_with(buffers, (4, 5)), args), expected)
    monkeypatch.setitem(RULES, kernel.LinearGradWeightSgdKernelOp, _cut_summed_rows)
    faulty = _tile_with(buffers, (2, 4, 5), (1, 2, 0))  # rows inside: a legal order
    for mode in ("immediate", "deferred"):
        actual = updated_weight(faulty, args, mode)
        assert not np.allclose(actual, expected, *TIGHT[np.dtype(np.float32)])


def test_a_weight_map_that_is_off_is_caught():
    """A square weight read through the transposed tile (the map of the weight's read
    swapped): the shapes fit, the numbers do not."""
    module, args = linear_update((3,), 6, 6, 0.01, 5)
    buffers = apply_passes("bufferize", module)
    expected = updated_weight(buffers, args)
    tiled = _tile_with(buffers, (3, 3))
    assert_close_weights(updated_weight(tiled, args), expected)
    loads = [op for op in tiled.walk() if isinstance(op, tile.WindowOp)
             and op.when.data == "first" and isinstance(op.buffer.owner, kernel.GetParamOp)]
    assert len(loads) == 2  # the prologue's, and the prefetch in the nest
    for op in loads:
        op.properties["map"] = ints((1, 0))
    for mode in ("immediate", "deferred"):
        actual = updated_weight(tiled, args, mode)
        assert not np.allclose(actual, expected, *TIGHT[np.dtype(np.float32)])


# --------------------------------------------------------------------------------------
# C
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("double_buffer", [True, False])
def test_tiled_fused_step_in_c_equals_the_interpreter(double_buffer: bool,
                                                      tmp_path: Path):
    """The conv -> relu -> linear model's fused step, planned for GAP9 at 2 KiB of L1
    (both fused updates cut into tiles), through the host DMA shim with 8 threads."""
    module, inputs = _conv_linear_model(2, {"stride": (1, 2), "padding": (1, 1, 1, 1),
                                            "dilation": (2, 1)})
    tensor = apply_passes("train-full{loss=mse lr=0.05 weight-decay=0.01}", module)
    db = str(double_buffer).lower()
    planned = apply_passes("fuse-weight-updates,lower-to-buffers{soc=gap9 l1-bytes=2048 "
                           f"double-buffer={db}}}", tensor)
    loops = fused_loops(planned)
    assert len(loops) == 2
    assert all(tile.schedule_of(loop.schedule).count > 1 for loop in loops)
    labels = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    assert_c_equals_interpreter(planned, tmp_path / "project", {**inputs, "labels": labels},
                                threads=8)


# --------------------------------------------------------------------------------------
# CCT2 on GAP9
# --------------------------------------------------------------------------------------


def test_cct2_fused_step_on_the_gap9_build_fits_l2_and_equals_the_tensor_level():
    """The bench's pipeline (bench/memory_passes.py), tiled for GAP9: weights + arena +
    constants within 1.5 MiB of L2, L1 within 120,000 B, and one step (DMA copies
    landing at their waits) gives the tensor level's loss and parameters."""
    model = import_onnx(deeploy_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")
    tensor = apply_passes(
        "pool-before-activation,train-full{lr=0.01},fuse-weight-updates,"
        "recompute{segments=true expensive=true max-extra-flops=0.2},"
        "reorder-for-memory{function=train_step}", model)
    planned = apply_passes("lower-to-buffers{soc=gap9}", tensor)
    assert len(fused_loops(planned)) > 0
    figures = memory_figures(planned)
    l2 = figures["L2"]
    assert l2["peak_bytes"] + l2["persistent_bytes"] + l2["constants_bytes"] <= 1536 * 1024
    assert figures["L1"]["peak_bytes"] <= 120_000
    (image, _) = get_function(tensor, "train_step").body.block.args
    x = np.random.default_rng(0).standard_normal(
        image.type.get_shape()).astype(np.float32)  # type: ignore[attr-defined]
    args = [x, np.array([3], dtype=np.int32)]
    assert_same_training(tensor, planned, args, [x], steps=1, dma="deferred")
