"""Checks shared by the buffer-level and tile-level tests: an independent check of a
recorded memory plan, the random training models and strategies they draw, and the
comparison of training runs."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
from hypothesis import event, reject
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, OFFSET_ATTR
from edge_opt.ir.interpreters.dma import DmaMode
from edge_opt.ir.liveness import allocations
from edge_opt.ir.session import Session, get_function, params_of
from edge_opt.passes.tile_l1 import problem_of, target_of, tile_op
from edge_opt.support import schedule_search
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.memory_plan import Plan, check_plan
from edge_opt.support.schedule_search import Choice, Problem
from edge_opt.support.socs import get_soc
from edge_opt.support.tiling import Schedule
from edge_opt.testing import RandomModel, apply_passes, random_models


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def op_count(module: ModuleOp, op_type: type) -> int:
    return sum(isinstance(op, op_type) for op in module.walk())


def memory_attr(module: ModuleOp) -> dict[str, dict[str, int]]:
    attr = module.attributes[MEMORY_ATTR]
    assert isinstance(attr, DictionaryAttr)
    return {
        level: {k: v.value.data for k, v in figures.data.items()}  # type: ignore[union-attr]
        for level, figures in attr.data.items()
    }


def assert_valid_plan(module: ModuleOp, alignment: int = 16) -> None:
    """Checks the plan recorded in a planned module independently of the planner: every
    buffer has an aligned offset inside its level's arena, buffers live at the same
    time never overlap, parameters do not overlap in their persistent region, and the
    recorded figures are consistent (lower bound <= arena <= naive)."""
    figures = memory_attr(module)
    for function in (o for o in module.ops if isinstance(o, func.FuncOp)):
        by_level: dict[str, list] = {}
        for a in allocations(function):
            by_level.setdefault(a.level, []).append(a)
        for level, allocs in by_level.items():
            offsets = {}
            for a in allocs:
                assert a.op.offset is not None, f"unplanned {a.buffer.name}"
                offsets[a.buffer.name] = a.op.offset.value.data
                assert offsets[a.buffer.name] % alignment == 0
                assert offsets[a.buffer.name] + a.buffer.size <= figures[level]["arena"]
            check_plan([a.buffer for a in allocs], Plan(offsets, 0, "recorded"))
    persistent: dict[str, list[tuple[int, int]]] = {}
    for param in params_of(module).values():
        level = param.attributes[LEVEL_ATTR]
        offset = param.attributes[OFFSET_ATTR]
        assert isinstance(level, StringAttr) and isinstance(offset, IntegerAttr)
        size = param.type.element_count() * numpy_dtype(param.type.element_type).itemsize
        persistent.setdefault(level.data, []).append((offset.value.data, size))
    for level, places in persistent.items():
        places.sort()
        for (lo, size), (next_lo, _) in zip(places, places[1:]):
            assert lo + size <= next_lo
        assert places[-1][0] + places[-1][1] <= figures[level]["persistent"]
    for level, f in figures.items():
        assert f["lower_bound"] <= f["arena"] <= f["naive"], (level, f)


# --------------------------------------------------------------------------------------
# Random models: the planned buffer level equals the tensor level
# --------------------------------------------------------------------------------------

STRATEGIES = [
    "train-full",
    "train-last{layers=1}",
    "train-last{layers=2}",
    "train-sparse{budget-kib=0.5}",
    "train-sparse{budget-kib=4}",
]
OPTIMIZERS = {
    "sgd": "optimizer=sgd lr=0.01",
    "momentum": "optimizer=sgd lr=0.01 momentum=0.9 weight-decay=0.001",
    "adam": "optimizer=adam lr=0.001 epsilon=1e-2",
}
"""The optimizers the plan, tiling and memory-pass tests compare steps with. Adam's
epsilon is 1e-2, not 1e-8: a parameter whose gradient is zero in exact arithmetic (an
attention's key bias: softmax ignores a per-query shift) gets a gradient of rounding
noise (~1e-9, up to ~3e-7 with inputs centred at -3), which Adam's first step,
lr g / (|g| + epsilon), turns into a step of about lr whose sign depends on the
summation order, so two correct schedules of the same step would differ by ~lr; with
1e-2 the noise moves it by at most ~3e-5 lr, and a real gradient (~1e-1) still takes
an Adam step (~0.9 lr). Adam's own numbers are checked against torch elsewhere
(tests/test_train_semantics.py)."""
NOTHING_TO_TRAIN = re.compile(
    r"no parameter is trainable|nothing would train|only \d+ layer\(s\) with trainable|"
    r"no layer has a trainable|budget-kib=[\d.]+ is too small|"
    r"matches no weight of a linear layer|trainable='[^']*' matches no parameter|"
    r"so it cannot be adapted"
)
"""Refusals of a training pipeline on a model that has nothing (or too little) to
train (no linear layer to adapt, for LoRA), or a layer too big for the budget: such drawn models are rejected, any other
failure is a failure."""

LAYER_MIX = [
    "linear", "conv2d", "matmul", "conv_transpose2d", "layer_norm", "batch_norm",
    "group_norm", "relu", "gelu", "add", "mul", "reshape", "max_pool2d", "avg_pool2d",
    "softmax", "transpose", "slice", "concat", "gather", "sigmoid", "reduce_mean",
]
"""Ops that give models several parametrised layers (most drawn models train)."""


def training_models(**sizes) -> st.SearchStrategy[RandomModel]:
    """Random models with something to train; `sizes` (`batch`, `max_dim`) go to
    `random_models`."""
    return st.tuples(
        st.sampled_from([None, LAYER_MIX]), st.sampled_from(["all", "mixed"])
    ).flatmap(
        lambda o: random_models(ops=o[0], trainable=o[1], min_ops=2, max_ops=6, **sizes)
    )


def with_options(pipeline: str, options: str) -> str:
    if pipeline.endswith("}"):
        return f"{pipeline[:-1]} {options}}}"
    return f"{pipeline}{{{options}}}"


def train_or_reject(spec: str, module: ModuleOp) -> ModuleOp:
    try:
        return apply_passes(spec, module)
    except PassFailedException as e:
        if NOTHING_TO_TRAIN.search(str(e)):
            reject()
        raise


TIGHT = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}
"""Tolerance when the bits differ. They can, by an ulp: the tensor-level interpreter
passes NumPy views (a transpose is a strided view) to matmul, whose rounding depends on
the memory layout, while every buffer of the buffer level is contiguous."""


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> bool:
    """Bitwise equal (returns True), or within `TIGHT` (returns False)."""
    if same_bits(actual, expected):
        return True
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    rtol, atol = TIGHT.get(expected.dtype, (0.0, 0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
    return False


def assert_same_training(tensor: ModuleOp, planned: ModuleOp, args, forward_args,
                         steps: int = 3, dma: DmaMode = "immediate") -> bool:
    """`steps` training steps then `@forward` in both modules (`planned` with DMA
    copies landing as `dma` says): the same loss, the same parameters (and optimizer
    state) after every step, the same outputs. Returns whether all of it was bitwise
    equal."""
    expected, actual = Session(tensor), Session(planned, dma=dma)
    bitwise = True
    for step in range(steps):
        (loss,) = expected.run("train_step", args)
        (planned_loss,) = actual.run("train_step", args)
        bitwise &= assert_close(planned_loss, loss, f"step {step}: loss")
        assert set(actual.params) == set(expected.params)
        for name, value in expected.params.items():
            bitwise &= assert_close(np.asarray(actual.params[name]), value,
                                    f"step {step}: @{name}")
    for a, e in zip(actual.run("forward", forward_args),
                    expected.run("forward", forward_args), strict=True):
        bitwise &= assert_close(a, e, "@forward after training")
    return bitwise


def mse_labels(tensor: ModuleOp, seed: int) -> np.ndarray:
    """Random regression targets shaped like `@forward`'s output (for `loss=mse`)."""
    output = get_function(tensor, "forward").function_type.outputs.data[0]
    assert isinstance(output, TensorType)
    labels = np.random.default_rng(seed).standard_normal(output.get_shape())
    return labels.astype(numpy_dtype(output.element_type))


RANDOM_TILING_TARGET = target_of(get_soc("gap9"), 0, True, 16)


def random_schedule(problem: Problem, rng: random.Random) -> Schedule:
    """Random tile sizes (any, not only divisors: ragged tiles) and a random legal
    loop order."""
    sizes = tuple(rng.randint(1, n) if split else n
                  for n, split in zip(problem.extents, problem.splittable, strict=True))
    orders = list(itertools.permutations(range(len(problem.extents))))
    rng.shuffle(orders)
    for order in orders:
        schedule = Schedule(problem.extents, sizes, order)
        if schedule_search.legal(schedule, problem):
            return schedule
    raise AssertionError("no legal order")  # the order with summed dims inside exists


def tile_randomly(buffers: ModuleOp, rng: random.Random) -> ModuleOp:
    """A copy of the buffer-level `buffers` with each kernel op tiled under a random
    schedule (`random_schedule`), as `tile-l1` would write it for that schedule."""
    tiled = buffers.clone()
    for function in (o for o in tiled.ops if isinstance(o, func.FuncOp)):
        for op in list(function.body.block.ops):
            if isinstance(op, kernel.KernelOp):
                problem = problem_of(op)
                schedule = random_schedule(problem, rng)
                tile_op(op, Choice(schedule, schedule_search.cost(
                    schedule, problem, RANDOM_TILING_TARGET), "random", 1), problem)
                ragged = any(n % s for n, s in zip(schedule.extents, schedule.sizes,
                                                   strict=True))
                event(f"{op.name} {'ragged' if ragged else 'even'}")
    tiled.verify()
    return tiled
