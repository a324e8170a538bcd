"""`tile-attention-depth-first`: attention one head and one block of query rows at a
time, forward (the blocked `lower-attention`) and backward (the blocked gradient rule).

Oracles: the untiled module, interpreted (random attention models drawn by hypothesis,
float64, every subset of trained operands), the buffer level byte-accurately, and the
generated C; the structure of the IR (no softmax over more than one head or more than
`rows` query rows); the planned memory of one MHSA layer with CCT2's shapes and with
256 tokens (`bench/attention_tiling.py` prints the figures).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_attention import (
    MSE,
    OPERANDS,
    Style,
    assert_same_training,
    count,
    exporter_attention,
    first_step,
    partly_trained_attention,
    train_step,
)
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, nn, train
from edge_opt.ir.liveness import allocations
from edge_opt.ir.memory_report import memory_figures
from edge_opt.ir.session import get_function
from edge_opt.passes.tile_attention_depth_first import TileAttentionDepthFirstPass
from edge_opt.support.errors import UserError
from edge_opt.testing import (
    RandomModel,
    apply_passes,
    assert_pass_preserves_semantics,
    random_models,
)
from edge_opt.testing.models import self_attention_layer

PROPERTY = settings(max_examples=40)


def _tokens(op: nn.AttentionOp) -> int:
    return op.x.type.get_shape()[1]


# --------------------------------------------------------------------------------------
# Equivalence
# --------------------------------------------------------------------------------------


@PROPERTY
@given(random_models(ops=["attention", "linear", "gelu", "add"], max_ops=5, dtype="f64"),
       st.integers(1, 4))
def test_tiled_forward_equals_untiled(model: RandomModel, rows: int):
    assume(count(model.module, nn.AttentionOp) > 0)
    tiled = assert_pass_preserves_semantics(
        TileAttentionDepthFirstPass(rows=rows), model.module, model.inputs,
        rtol=0, atol=0,  # the property alone changes nothing
    )
    blocked = assert_pass_preserves_semantics(
        "lower-attention", tiled, model.inputs, rtol=1e-12, atol=1e-12
    )
    blocks = 0
    for op in tiled.walk():
        if isinstance(op, nn.AttentionOp):
            tiles = op.rows_per_block is not None
            blocks += op.heads.value.data * math.ceil(_tokens(op) / rows) if tiles else 1
            assert tiles == (op.heads.value.data > 1 or rows < _tokens(op))
    assert count(blocked, nn.SoftmaxOp) - count(model.module, nn.SoftmaxOp) == blocks


@PROPERTY
@given(random_models(ops=["attention", "linear", "tanh"], max_ops=4, dtype="f64",
                     trainable="all"), st.integers(1, 4))
def test_tiled_training_step_equals_untiled(model: RandomModel, rows: int):
    """The blocked gradient rule against the dense one (float64), and the tiled
    training step at the buffer level, byte-accurately, against the tensor level."""
    assume(count(model.module, nn.AttentionOp) > 0)
    spec = f"autodiff{{{MSE}}}"
    tile = f"tile-attention-depth-first{{rows={rows}}},{spec}"
    labels, dense = first_step(model, spec)
    if dense is None:
        return
    assert_same_training(dense, train_step(model.module, tile, model.inputs, labels), 1e-9)
    assert_pass_preserves_semantics(
        "lower-attention,bufferize,plan-memory", apply_passes(tile, model.module),
        [*model.inputs.values(), labels], function="train_step",
    )


@pytest.mark.parametrize("trained", [[o] for o in OPERANDS] + [OPERANDS, ["wq", "wo"]],
                         ids=lambda t: "+".join(t) if len(t) < 9 else "all")
def test_blocked_backward_for_every_trained_subset(trained: list[str]):
    """Whatever trains, the blocked backward gives the dense one's gradients, emits
    nothing `dce` would remove, and no softmax-sized value spans two heads or more
    than `rows` query rows (7 tokens, rows 3: blocks of 3, 3, 1)."""
    module = partly_trained_attention(trained, tokens=7)
    spec = f"autodiff{{{MSE}}}"
    tiled_spec = f"tile-attention-depth-first{{rows=3}},{spec}"
    rng = np.random.default_rng(0)
    inputs = {"x0": rng.standard_normal((2, 7, 4))}
    labels = rng.standard_normal((2, 7, 3))
    # (d_bk is zero in exact arithmetic: softmax ignores a constant per query row.)
    assert_same_training(train_step(module, spec, inputs, labels),
                         train_step(module, tiled_spec, inputs, labels), 1e-9, floor=1e-6)
    stepped = get_function(apply_passes(tiled_spec, module), "train_step")
    cleaned = get_function(apply_passes(f"{tiled_spec},dce", module), "train_step")
    assert [op.name for op in cleaned.walk()] == [op.name for op in stepped.walk()]
    for op in stepped.walk():
        if isinstance(op, (nn.SoftmaxOp, train.SoftmaxGradOp)):
            assert op.results[0].type.get_shape() in ((2, 3, 7), (2, 1, 7)), op


# --------------------------------------------------------------------------------------
# Structure and memory
# --------------------------------------------------------------------------------------


def test_no_attention_map_larger_than_a_block():
    """12 tokens, 3 heads, rows 5: 3 x 3 blocks of (5|5|2, 12) scores in the forward
    and in the training step's backward, at the buffer level too."""
    module, _ = self_attention_layer(12, 6, 3)
    step = apply_passes("tile-attention-depth-first{rows=5},autodiff{loss=mse}", module)
    function = get_function(step, "train_step")
    softmaxes = [op for op in function.walk() if isinstance(op, nn.SoftmaxOp)]
    grads = [op for op in function.walk() if isinstance(op, train.SoftmaxGradOp)]
    assert len(grads) == 9 and len(softmaxes) == 9  # recomputed per block
    assert count(function, nn.AttentionOp) == 1  # the forward keeps the op
    planned = apply_passes("lower-attention,bufferize,plan-memory", step)
    for name in ("forward", "train_step"):
        shapes = {
            tuple(op.operands[0].type.get_shape())
            for op in get_function(planned, name).walk()
            if isinstance(op, (kernel.SoftmaxKernelOp,))
        }
        assert shapes == {(1, 5, 12), (1, 2, 12)}, (name, shapes)


def _planned(module: ModuleOp, spec: str) -> ModuleOp:
    return apply_passes(spec + "lower-attention,bufferize,plan-memory", module)


def _largest_map_buffer(module: ModuleOp, function: str) -> int:
    return max(
        a.buffer.size for a in allocations(get_function(module, function))
        if re.search(r"_(scores|scaled|probs|dprobs|dscores)$", a.buffer.name)
    )


@pytest.mark.parametrize("tokens", [64, 256])
@pytest.mark.parametrize("training", [False, True], ids=["forward", "train"])
def test_tiling_lowers_the_attention_memory(tokens: int, training: bool):
    """One MHSA layer, dim 128, 2 heads (CCT2's at 64 tokens): with rows 16 the
    largest attention-map buffer is one (16, S) block instead of (2, S, S), and the
    planned arena is not larger (much smaller at 256 tokens, where the map dominates)."""
    module, _ = self_attention_layer(tokens, 128, 2)
    train_spec = "autodiff{loss=mse}," if training else ""
    function = "train_step" if training else "forward"
    dense = _planned(module, train_spec)
    tiled = _planned(module, "tile-attention-depth-first{rows=16}," + train_spec)
    assert _largest_map_buffer(dense, function) == 2 * tokens * tokens * 4
    assert _largest_map_buffer(tiled, function) == 16 * tokens * 4
    dense_peak = memory_figures(dense)["L2"]["peak_bytes"]
    tiled_peak = memory_figures(tiled)["L2"]["peak_bytes"]
    assert tiled_peak <= dense_peak
    if tokens == 256:
        assert tiled_peak * 1.8 < dense_peak


# --------------------------------------------------------------------------------------
# Options, pipelines, C
# --------------------------------------------------------------------------------------


def test_one_head_in_one_block_is_left_alone():
    module, _ = self_attention_layer(8, 4, 1)
    (op,) = [o for o in apply_passes("tile-attention-depth-first{rows=8}", module).walk()
             if isinstance(o, nn.AttentionOp)]
    assert op.block_rows is None
    (op,) = [o for o in apply_passes("tile-attention-depth-first{rows=64}", module).walk()
             if isinstance(o, nn.AttentionOp)]
    assert op.block_rows is None
    (op,) = [o for o in apply_passes("tile-attention-depth-first{rows=3}", module).walk()
             if isinstance(o, nn.AttentionOp)]
    assert op.rows_per_block == 3


@pytest.mark.parametrize("spec, message", [
    ("tile-attention-depth-first{rows=0}", "option rows=0 is invalid: it must be an integer >= 1"),
    ("train-full{attention-rows=-1}", "option attention-rows=-1 is invalid: it must be an integer >= 0"),
    ("infer{attention-rows=-2}", "option attention-rows=-2 is invalid"),
    ("train-lora{attention-rows=8}", "attention-rows does not apply"),
])
def test_bad_options_are_clear_errors(spec: str, message: str):
    module, _ = self_attention_layer(8, 4, 2)
    with pytest.raises((PassFailedException, UserError), match=re.escape(message)):
        apply_passes(spec, module)


def test_block_rows_are_verified():
    module, _ = self_attention_layer(8, 4, 2)
    (op,) = [o for o in module.walk() if isinstance(o, nn.AttentionOp)]
    op.properties["block_rows"] = IntegerAttr(9, 64)
    with pytest.raises(Exception, match="block_rows must be between 1 and the 8 tokens"):
        module.verify()


def test_training_pipeline_option_tiles_the_raised_attention():
    """`train-full{attention-rows=2}` raises an exported attention, tiles it and
    differentiates the blocks: the same step as untiled."""
    style = Style(tokens=5, features=4, heads=2, bias="all", out_bias=True)
    module = exporter_attention(style, 0, np.float64)
    rng = np.random.default_rng(0)
    inputs = {"x0": rng.standard_normal((2, 5, 4))}
    labels = rng.standard_normal((2, 5, 4))
    tiled = apply_passes(f"train-full{{{MSE} attention-rows=2}}", module)
    assert {op.rows_per_block for op in tiled.walk() if isinstance(op, nn.AttentionOp)} \
        == {2}
    assert_same_training(
        train_step(module, f"train-full{{{MSE}}}", inputs, labels),
        train_step(module, f"train-full{{{MSE} attention-rows=2}}", inputs, labels), 1e-9,
    )


def test_tiled_training_step_in_c(tmp_path):
    """The blocked forward and backward through `--emit c`: three steps as the
    interpreter computes them."""
    from c_project import assert_c_matches_interpreter

    module, _ = self_attention_layer(10, 8, 2, batch=2, seed=4)
    module = apply_passes("tile-attention-depth-first{rows=4},autodiff{loss=mse lr=0.05}", module)
    rng = np.random.default_rng(3)
    batch = {"x": rng.standard_normal((2, 10, 8)).astype(np.float32),
             "labels": rng.standard_normal((2, 10, 8)).astype(np.float32)}
    assert_c_matches_interpreter(module, tmp_path / "project", batch)


def test_cct2_training_step_tiled(shared_model):
    """CCT2 FT2 (imported, attention raised), `train-full` with and without
    `attention-rows=16`: the same SGD step (float32 rounding apart)."""
    from edge_opt.frontends.onnx import import_onnx
    from edge_opt.testing import random_inputs

    module = import_onnx(shared_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")
    rng = np.random.default_rng(0)
    inputs = random_inputs(get_function(module, "forward"), rng)
    labels = np.array([3], dtype=np.int32)
    dense = train_step(module, "train-full{lr=1.0}", inputs, labels)
    tiled = train_step(module, "train-full{lr=1.0 attention-rows=16}", inputs, labels)
    assert_same_training(dense, tiled, 1e-4)
