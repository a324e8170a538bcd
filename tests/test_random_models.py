"""Property tests of the pass-equivalence harness (`edge_opt.testing`).

The random models verify, round-trip through both text forms bit for bit, cover every op
of the `nn` dialect and honour the strategy's options; the upstream clean-up passes keep
their meaning on them; and the check really fails for a wrong pass.

Under CI (`CI` set) the examples are derandomized, so a run is reproducible; locally
each run draws new models and hypothesis' database replays failures.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr, f32
from xdsl.ir import Block, Region
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.transforms.common_subexpression_elimination import (
    CommonSubexpressionElimination,
)
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from edge_opt.dialects import nn
from edge_opt.ir.model_io import parse_module, print_module
from edge_opt.ir.session import Session, get_function, run
from edge_opt.support.dtypes import to_dense, to_numpy
from edge_opt.testing import (
    ALL_OPS,
    RandomModel,
    assert_pass_preserves_semantics,
    random_inputs,
    random_models,
)

ROOT = Path(__file__).resolve().parent.parent

PROPERTY = settings(max_examples=60)
"""Settings of the property tests (about 5-20 ms per example)."""

SEARCH = settings(
    max_examples=500,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],  # the first model found will do; no shrinking
    suppress_health_check=list(HealthCheck),
)
"""Settings of the deterministic searches (`find`) for a model with some property."""


def op_names(module: ModuleOp) -> set[str]:
    return {op.name for op in module.walk()}


def op_count(module: ModuleOp) -> int:
    return sum(1 for _ in module.walk())


def any_dtype_models(**options) -> st.SearchStrategy[RandomModel]:
    return st.sampled_from(["f32", "f64"]).flatmap(
        lambda dtype: random_models(dtype=dtype, **options)
    )


# --------------------------------------------------------------------------------------
# The models are valid and survive printing and parsing
# --------------------------------------------------------------------------------------


@PROPERTY
@given(any_dtype_models(max_ops=12))
def test_random_models_verify_and_round_trip(model: RandomModel):
    module = model.module
    module.verify()
    function = get_function(module, "forward")
    assert sorted(model.inputs) == sorted(
        a.name_hint for a in function.body.block.args
    )
    outputs = run(module, "forward", model.inputs)
    assert outputs and all(np.all(np.isfinite(o)) for o in outputs)

    custom = print_module(module)
    for generic in (False, True):
        text = print_module(module, generic=generic)
        parsed = parse_module(text)
        assert print_module(parsed, generic=generic) == text
        assert print_module(parsed) == custom
        reparsed = run(parsed, "forward", model.inputs)
        assert len(reparsed) == len(outputs)
        for a, b in zip(reparsed, outputs, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()  # bitwise, not approximately


# --------------------------------------------------------------------------------------
# The strategy covers the dialect and honours its options
# --------------------------------------------------------------------------------------


def features(module: ModuleOp) -> set[str]:
    """The op variants in `module` that the strategy promises to draw."""
    found: set[str] = set()

    def shape(value) -> tuple[int, ...]:
        return tuple(value.type.get_shape())

    for op in module.walk():
        if isinstance(op, nn.Conv2dOp):
            groups, channels = op.groups.value.data, shape(op.input)[1]
            t, l, b, r = op.padding.get_values()
            found |= {"conv2d"} | {
                f"conv2d-{k}"
                for k, present in (
                    ("grouped", 1 < groups < channels),
                    ("depthwise", groups == channels > 1),
                    ("strided", max(op.stride.get_values()) > 1),
                    ("dilated", max(op.dilation.get_values()) > 1),
                    ("asymmetric-padding", t != b or l != r),
                )
                if present
            }
        elif isinstance(op, nn.ConvTranspose2dOp):
            if op.groups.value.data > 1:
                found.add("conv_transpose2d-grouped")
            if max(op.output_padding.get_values()) > 0:
                found.add("conv_transpose2d-output-padding")
        elif isinstance(op, nn.MatmulOp):
            if op.transpose_lhs is not None:
                found.add("matmul-transpose-lhs")
            if op.transpose_rhs is not None:
                found.add("matmul-transpose-rhs")
            if shape(op.lhs)[:-2] != shape(op.rhs)[:-2]:
                found.add("matmul-broadcast")
        elif isinstance(op, nn.BinaryElementwiseOp):
            if shape(op.lhs) != shape(op.rhs):
                found.add(f"{op.name}-broadcast")
        elif isinstance(op, nn.BatchNormOp):
            found.add("batch_norm-" + ("training" if op.training else "inference"))
        elif isinstance(op, nn.MaxPool2dOp):
            if op.ceil_mode is not None:
                found.add("max_pool2d-ceil")
            if max(op.dilation.get_values()) > 1:
                found.add("max_pool2d-dilated")
            if max(op.padding.get_values()) > 0:
                found.add("max_pool2d-padded")
        elif isinstance(op, nn.AvgPool2dOp) and op.count_include_pad is not None:
            found.add("avg_pool2d-count-include-pad")
        elif isinstance(op, nn.SliceOp) and min(op.steps.get_values()) < 0:
            found.add("slice-negative-step")
        elif isinstance(op, nn.GatherOp):
            indices = op.indices.get_values()
            if len(set(indices)) < len(indices):
                found.add("gather-repeated")
        elif isinstance(op, nn.AttentionOp):
            dk, dv = op.head_sizes
            found |= {
                f"attention-{k}"
                for k, present in (
                    ("biased", op.biases is not None),
                    ("multi-head", op.heads.value.data > 1),
                    ("value-size", dk != dv),
                )
                if present
            }
        elif isinstance(op, nn.GeluOp) and op.approximate.data == "tanh":
            found.add("gelu-tanh")
        elif isinstance(op, nn.ReduceSumOp | nn.ReduceMeanOp) and op.keepdims:
            found.add("reduce-keepdims")
        if any(isinstance(r.type, TensorType) and not shape(r) for r in op.results):
            found.add("rank-0")
    return found


EXPECTED_FEATURES = {
    "conv2d-grouped", "conv2d-depthwise", "conv2d-strided", "conv2d-dilated",
    "conv2d-asymmetric-padding", "conv_transpose2d-grouped",
    "conv_transpose2d-output-padding", "matmul-transpose-lhs", "matmul-transpose-rhs",
    "matmul-broadcast", "batch_norm-training", "batch_norm-inference",
    "max_pool2d-ceil", "max_pool2d-dilated", "max_pool2d-padded",
    "avg_pool2d-count-include-pad", "slice-negative-step", "gather-repeated", "gelu-tanh",
    "reduce-keepdims", "rank-0", "attention-biased", "attention-multi-head",
    "attention-value-size",
    *(f"nn.{op}-broadcast" for op in ("add", "sub", "mul", "div", "pow")),
}  # fmt: skip


def test_strategy_covers_every_op_of_the_dialect_and_its_variants():
    seen_ops: set[str] = set()
    seen_features: set[str] = set()

    @settings(
        max_examples=800,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(random_models())
    def collect(model: RandomModel):
        seen_ops.update(op_names(model.module))
        seen_features.update(features(model.module))

    collect()
    dialect_ops = {op.name for op in nn.NN.operations}
    assert dialect_ops - seen_ops == set()
    assert {f"nn.{name}" for name in ALL_OPS} <= dialect_ops
    assert EXPECTED_FEATURES - seen_features == set()


def test_mixed_trainable_yields_trainable_and_frozen_params():
    def both(model: RandomModel) -> bool:
        params = [op for op in model.module.ops if isinstance(op, nn.ParamOp)]
        flags = {p.is_trainable for p in params}
        return flags == {True, False}

    model = find(random_models(trainable="mixed"), both, settings=SEARCH)
    assert both(model)


@PROPERTY
@given(
    st.sampled_from(["all", "none"]).flatmap(
        lambda t: st.tuples(
            st.just(t), random_models(trainable=t, ops=["linear", "conv2d"])
        )
    )
)
def test_all_or_no_params_trainable(case):
    trainable, model = case
    params = [op for op in model.module.ops if isinstance(op, nn.ParamOp)]
    assert params
    assert all(p.is_trainable == (trainable == "all") for p in params)


@PROPERTY
@given(
    random_models(
        ops=["conv2d", "max_pool2d"], dtype="f64", batch=(3,), max_dim=3, min_ops=2,
        max_ops=3,
    )
)
def test_options_are_honoured(model: RandomModel):
    names = op_names(model.module)
    assert names & {"nn.conv2d", "nn.max_pool2d"}
    # Only glue besides the requested ops.
    glue = {
        "builtin.module", "func.func", "func.return", "nn.param", "nn.load",
        "nn.reshape", "nn.slice", "nn.concat", "nn.tanh", "nn.constant",
    }
    assert names <= glue | {"nn.conv2d", "nn.max_pool2d"}
    for value in model.inputs.values():
        assert value.dtype == np.float64
        assert value.shape[0] == 3 and max(value.shape[1:]) <= 3
    for op in model.module.walk():
        for result in op.results:
            assert isinstance(result.type, TensorType)
            assert result.type.element_type != f32


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="unknown op names"):
        random_models(ops=["relu", "softplus"])
    with pytest.raises(ValueError, match="min_ops"):
        random_models(min_ops=3, max_ops=2)
    with pytest.raises(ValueError, match="dtype"):
        random_models(dtype="f16")  # type: ignore[arg-type]


def test_models_give_cse_and_dce_work():
    def shrinks_under(p: ModulePass):
        def condition(model: RandomModel) -> bool:
            module = model.module.clone()
            p.apply(Context(), module)
            return op_count(module) < op_count(model.module)

        return condition

    def outputs(model: RandomModel) -> int:
        return len(get_function(model.module, "forward").function_type.outputs)

    for p in (CommonSubexpressionElimination(), DeadCodeElimination()):
        find(random_models(), shrinks_under(p), settings=SEARCH)
    find(random_models(), lambda m: outputs(m) > 1, settings=SEARCH)


def test_random_inputs_follow_the_signature():
    model = find(random_models(), lambda m: len(m.inputs) == 2, settings=SEARCH)
    function = get_function(model.module, "forward")
    first = random_inputs(function, np.random.default_rng(7))
    again = random_inputs(function, np.random.default_rng(7))
    assert list(first) == list(model.inputs)
    for name, value in first.items():
        assert value.shape == model.inputs[name].shape
        assert value.dtype == model.inputs[name].dtype
        assert np.array_equal(value, again[name])


# --------------------------------------------------------------------------------------
# The clean-up passes keep the meaning of random models
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", ["canonicalize", "cse", "dce", "infer"])
@PROPERTY
@given(model=any_dtype_models(max_ops=12))
def test_cleanup_passes_preserve_semantics(pipeline: str, model: RandomModel):
    before = print_module(model.module)
    result = assert_pass_preserves_semantics(pipeline, model.module, model.inputs)
    assert print_module(model.module) == before  # the input module is left alone
    assert result is not model.module


def test_pass_instances_and_sequences_are_accepted():
    model = find(random_models(min_ops=4), lambda m: True, settings=SEARCH)
    cse = CommonSubexpressionElimination()
    one = assert_pass_preserves_semantics(cse, model.module)
    both = assert_pass_preserves_semantics(
        [CommonSubexpressionElimination(), DeadCodeElimination()], model.module
    )
    same = assert_pass_preserves_semantics("cse,dce", model.module, model.inputs)
    assert print_module(both) == print_module(same)
    assert op_count(both) <= op_count(one)


# --------------------------------------------------------------------------------------
# The check catches wrong passes
# --------------------------------------------------------------------------------------


class _ReluToSigmoid(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ReluOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, nn.SigmoidOp(op.input))


@dataclass(frozen=True)
class ReluToSigmoidPass(ModulePass):
    """Deliberately wrong: relu and sigmoid differ everywhere but at one point."""

    name = "relu-to-sigmoid"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_ReluToSigmoid()).rewrite_module(op)


class _SwapSub(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.SubOp, rewriter: PatternRewriter) -> None:
        if op.attributes.get("swapped"):
            return
        swapped = nn.SubOp(op.rhs, op.lhs)
        swapped.attributes["swapped"] = UnitAttr()
        rewriter.replace(op, swapped)


@dataclass(frozen=True)
class SwapSubPass(ModulePass):
    """Deliberately wrong: `a - b` becomes `b - a`."""

    name = "swap-sub"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(_SwapSub()).rewrite_module(op)


@dataclass(frozen=True)
class DoubleParamsPass(ModulePass):
    """Deliberately wrong: doubles the value of every parameter."""

    name = "double-params"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for param in op.ops:
            if isinstance(param, nn.ParamOp) and param.value is not None:
                doubled = 2 * to_numpy(param.value)
                param.properties["value"] = to_dense(doubled, param.type)


@dataclass(frozen=True)
class DropReturnPass(ModulePass):
    """Deliberately wrong: leaves the function without its terminator."""

    name = "drop-return"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in op.ops:
            if isinstance(f, func.FuncOp):
                f.body.block.last_op.detach()  # type: ignore[union-attr]


def _sub_model() -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """`forward(x, y) = (x - y, w)` with a parameter `w`."""
    t = TensorType(f32, (2, 3))
    block = Block(arg_types=[t, t])
    x, y = block.args
    x.name_hint, y.name_hint = "x", "y"
    diff = nn.SubOp(x, y)
    load = nn.LoadOp("w", t)
    block.add_ops([diff, load, func.ReturnOp(diff, load)])
    value = to_dense(np.arange(6, dtype=np.float32).reshape(2, 3), t)
    w = nn.ParamOp("w", t, True, value)
    module = ModuleOp([w, func.FuncOp("forward", ([t, t], [t, t]), Region(block))])
    module.verify()
    rng = np.random.default_rng(0)
    return module, {
        "x": rng.standard_normal((2, 3)).astype(np.float32),
        "y": rng.standard_normal((2, 3)).astype(np.float32),
    }


@settings(PROPERTY, max_examples=20)
@given(random_models(ops=["relu"], max_ops=4))
def test_check_catches_a_wrong_pass_on_random_models(model: RandomModel):
    # The newest result, always returned, is a relu: its value must change.
    with pytest.raises(AssertionError, match=r"relu-to-sigmoid changed the meaning"):
        assert_pass_preserves_semantics(ReluToSigmoidPass(), model.module, model.inputs)


def test_failure_message_names_pass_output_errors_and_modules():
    module, inputs = _sub_model()
    with pytest.raises(AssertionError) as failure:
        assert_pass_preserves_semantics(SwapSubPass(), module, inputs)
    message = str(failure.value)
    assert message.startswith("swap-sub changed the meaning of @forward")
    assert re.search(r"output 0 differs: max abs error \S+, max rel error", message)
    assert "output 1" not in message
    assert "--- before ---" in message and "--- after ---" in message
    assert "nn.sub %x, %y" in message and "nn.sub %y, %x" in message


def test_check_compares_parameter_state_and_default_inputs():
    module, _ = _sub_model()
    with pytest.raises(AssertionError, match=r"parameter @w after the call differs"):
        assert_pass_preserves_semantics(DoubleParamsPass(), module)  # random inputs


def test_check_reports_invalid_ir_after_a_pass():
    module, inputs = _sub_model()
    with pytest.raises(AssertionError, match="drop-return .*does not verify"):
        assert_pass_preserves_semantics(DropReturnPass(), module, inputs)


def test_tolerances_and_given_params():
    module, inputs = _sub_model()
    session = Session(module)
    assert session.run("forward", inputs)[1][0, 1] == 1.0
    w = np.ones((2, 3), np.float32)
    # With w given, the doubled inline value is never read: outputs agree.
    assert_pass_preserves_semantics(DoubleParamsPass(), module, inputs, params={"w": w})
    # A generous tolerance hides a wrong pass: the check does what it is told.
    assert_pass_preserves_semantics(
        SwapSubPass(), module, inputs, atol=100.0, params={"w": w}
    )


# --------------------------------------------------------------------------------------
# The tutorial runs as written
# --------------------------------------------------------------------------------------


def test_writing_passes_tutorial_runs():
    text = (ROOT / "docs" / "writing-passes.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    code = compile(
        "\n".join(blocks), "docs/writing-passes.md", "exec", dont_inherit=True
    )
    tutorial = types.ModuleType("writing_passes_tutorial")
    sys.modules[tutorial.__name__] = tutorial  # dataclasses look their module up
    try:
        exec(code, tutorial.__dict__)
        tests = [f for name, f in vars(tutorial).items() if name.startswith("test_")]
        assert len(tests) == 2
        for test in tests:
            test()
    finally:
        del sys.modules[tutorial.__name__]
