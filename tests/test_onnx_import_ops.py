"""The ONNX ops that microcontroller models need beyond the basics (issue 10): Clip,
HardSigmoid, Elu, LeakyRelu, PRelu, Ceil/Floor/Round, Expand, Pad, GlobalMaxPool,
GroupNormalization, InstanceNormalization, Dropout in training mode; the opset range;
and the unsupported-op error that separates real blockers from the nodes downstream of
them. Each small graph (built with `onnx.helper`) is imported, interpreted and compared
with onnxruntime at the opsets where the ONNX semantics differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx_import import (
    check_against_ort,
    make_model,
    ops_of,
    random_inputs,
)

from edge_opt.frontends.onnx import (
    MAX_OPSET,
    MIN_OPSET,
    UnsupportedOnnxError,
    import_onnx,
)
from edge_opt.ir.session import params_of, run

ROOT = Path(__file__).resolve().parent.parent


def _constant(name: str, value) -> object:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)
    )


def _check_one(op_type, shape, opset, inputs=(), initializers=None, feeds=None,
               nodes_before=(), tolerance=1e-5, **attributes):
    """`y = op_type(x, *inputs)` against onnxruntime; returns the module."""
    node = helper.make_node(op_type, ["x", *inputs], ["y"], **attributes)
    model = make_model([*nodes_before, node], {"x": shape}, ["y"], initializers, opset)
    return check_against_ort(model, feeds or random_inputs({"x": shape}), tolerance)


# --------------------------------------------------------------------------------------
# Element-wise
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("op_type", ["Ceil", "Floor", "Round"])
def test_rounding(op_type):
    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.3, 0.7, 3.2, -4.6]], np.float32)
    module = _check_one(op_type, x.shape, 13, feeds={"x": x}, tolerance=0)
    assert ops_of(module) == [f"nn.{op_type.lower()}", "func.return"]


@pytest.mark.parametrize(
    "bounds", [(0.0, 6.0), (-1.0, None), (None, 0.5), (None, None)],
    ids=["relu6", "min", "max", "none"],
)
@pytest.mark.parametrize("form", ["attributes", "initializers", "constants"])
def test_clip(bounds, form):
    """Bounds are attributes before opset 11 (Clip-6, here at opset 10) and optional
    inputs since; an absent input is an empty name (or a missing trailing input)."""
    lo, hi = bounds
    feeds = {"x": (random_inputs({"x": (2, 3, 4)})["x"] * 4).astype(np.float32)}
    if form == "attributes":
        attributes = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        module = _check_one("Clip", (2, 3, 4), 10, feeds=feeds, **attributes)
    else:
        names = ["lo" if lo is not None else "", "hi" if hi is not None else ""]
        while names and not names[-1]:
            names.pop()
        values = {n: np.array(v, np.float32) for n, v in zip(("lo", "hi"), bounds)
                  if v is not None}
        if form == "initializers":
            module = _check_one("Clip", (2, 3, 4), 13, names, values, feeds)
        else:
            before = [_constant(n, v) for n, v in values.items()]
            module = _check_one("Clip", (2, 3, 4), 13, names, feeds=feeds,
                                nodes_before=before)
    expected = ["func.return"] if bounds == (None, None) else ["nn.clip", "func.return"]
    assert ops_of(module) == expected


def test_clip_with_a_computed_bound_is_unsupported():
    nodes = [helper.make_node("Clip", ["x", "", "m"], ["y"], name="clip")]
    model = make_model(nodes, {"x": (4,), "m": ()}, ["y"], opset=13)
    with pytest.raises(UnsupportedOnnxError, match=r"Clip: non-constant max: 1 node"):
        import_onnx(model)


@pytest.mark.parametrize("attributes", [{}, {"alpha": 1 / 6}, {"alpha": 0.5, "beta": 0.2}])
def test_hard_sigmoid(attributes):
    feeds = {"x": (random_inputs({"x": (2, 3, 5)})["x"] * 4).astype(np.float32)}
    module = _check_one("HardSigmoid", (2, 3, 5), 13, feeds=feeds, **attributes)
    assert ops_of(module) == ["nn.hardsigmoid", "func.return"]


@pytest.mark.parametrize("op_type", ["Elu", "LeakyRelu"])
@pytest.mark.parametrize("alpha", [None, 0.3, 1.7])
def test_elu_and_leaky_relu(op_type, alpha):
    attributes = {} if alpha is None else {"alpha": alpha}
    feeds = {"x": (random_inputs({"x": (2, 3, 5)})["x"] * 3).astype(np.float32)}
    module = _check_one(op_type, (2, 3, 5), 13, feeds=feeds, **attributes)
    name = {"Elu": "nn.elu", "LeakyRelu": "nn.leaky_relu"}[op_type]
    assert ops_of(module) == [name, "func.return"]


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (4,), ()])
def test_prelu(slope_shape):
    """The slope broadcasts to the input (unidirectionally) and stays a trainable
    parameter (unless rank 0, a literal)."""
    slope = np.random.default_rng(1).uniform(0.05, 0.5, slope_shape).astype(np.float32)
    module = _check_one("PRelu", (2, 3, 2, 4), 13, ["slope"], {"slope": slope})
    if slope_shape:
        (param,) = params_of(module).values()
        assert param.sym_name.data == "slope" and param.is_trainable


def test_prelu_slope_that_does_not_broadcast_to_the_input_is_unsupported():
    """Only the slope broadcasts (ONNX's unidirectional broadcasting), not the input."""
    slope = np.ones((3, 2, 1), np.float32)
    node = helper.make_node("PRelu", ["x", "slope"], ["y"], name="p")
    model = make_model([node], {"x": (2, 3, 1, 4)}, ["y"], {"slope": slope})
    with pytest.raises(UnsupportedOnnxError, match="PRelu: slope of shape"):
        import_onnx(model)


# --------------------------------------------------------------------------------------
# Shape ops
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, target",
    [((3, 1), (2, 1, 4)), ((1, 1, 4), (5, 1, 1)), ((2, 3), (3,)), ((2, 3), (1, 2, 3))],
)
def test_expand(shape, target):
    """Bidirectional broadcasting of the input and the target shape."""
    module = _check_one("Expand", shape, 13, ["shape"],
                        {"shape": np.array(target, np.int64)})
    expected = np.broadcast_shapes(shape, target)
    ops = ["func.return"] if expected == shape else ["nn.broadcast_to", "func.return"]
    assert ops_of(module) == ops


def test_expand_of_a_class_token_parameter():
    """ViT: a (1, 1, D) class token expanded to the batch and concatenated; the token
    stays one trainable parameter."""
    token = np.random.default_rng(0).standard_normal((1, 1, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Expand", ["cls", "shape"], ["tokens"]),
        helper.make_node("Concat", ["tokens", "x"], ["y"], axis=1),
    ]
    initializers = {"cls": token, "shape": np.array([2, 1, 1], np.int64)}
    model = make_model(nodes, {"x": (2, 3, 4)}, ["y"], initializers, opset=13)
    module = check_against_ort(model, random_inputs({"x": (2, 3, 4)}))
    assert [n for n, p in params_of(module).items() if p.is_trainable] == ["cls"]
    assert "nn.broadcast_to" in ops_of(module)


PAD_CASES = [
    ("constant", [0, 0, 1, 2, 0, 0, 2, 0]),
    ("constant", [0, 1, -1, 0, 0, 0, 1, -2]),
    ("reflect", [0, 0, 2, 1, 0, 0, 1, 3]),
    ("edge", [0, 1, 3, 0, 1, 0, 0, 2]),
    ("reflect", [0, 0, -1, 1, 0, 0, 2, -1]),
]


@pytest.mark.parametrize(
    "mode, pads, opset",
    [(m, p, o) for m, p in PAD_CASES for o in (10, 13, 19)]
    + [("wrap", [0, 0, 4, 1, 0, 0, 2, 4], 19), ("wrap", [0, 0, 1, -1, 0, 0, 0, 4], 21)],
)
def test_pad(mode, pads, opset):
    """Pads (begins, then ends) from an attribute before opset 11, from an input since;
    negative pads crop. ("wrap" exists since opset 19.)"""
    shape = (2, 3, 4, 5)
    if opset < 11:
        module = _check_one("Pad", shape, opset, mode=mode, pads=pads, value=1.5)
    else:
        initializers = {"pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)}
        module = _check_one("Pad", shape, opset, ["pads", "value"], initializers,
                            mode=mode)
    if mode == "constant":
        assert "nn.pad" in ops_of(module)
    else:
        assert "nn.concat" in ops_of(module) and "nn.pad" not in ops_of(module)


def test_pad_with_axes():
    """Opset 18: pads for the listed axes only (here the two spatial ones)."""
    initializers = {
        "pads": np.array([1, 0, 2, 3], np.int64),
        "axes": np.array([-2, 3], np.int64),
    }
    node = helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect")
    model = make_model([node], {"x": (1, 2, 4, 5)}, ["y"], initializers, opset=18)
    check_against_ort(model, random_inputs({"x": (1, 2, 4, 5)}))


@pytest.mark.parametrize(
    "mode, pads, message",
    [
        ("reflect", [0, 4, 0, 0], "Pad: mode=reflect with padding 4 > 2 on axis 1"),
        ("wrap", [0, 0, 0, 5], "Pad: mode=wrap with padding 5 > 3 on axis 1"),
        ("symmetric", [0, 1, 0, 0], "Pad: mode=symmetric"),
    ],
)
def test_unsupported_padding_names_the_mode(mode, pads, message):
    initializers = {"pads": np.array(pads, np.int64)}
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode, name="pad")
    model = make_model([node], {"x": (2, 3)}, ["y"], initializers, opset=19)
    with pytest.raises(UnsupportedOnnxError, match=re.escape(message)):
        import_onnx(model)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 7), (1, 2, 20, 18)])
def test_global_max_pool(shape):
    """A max pool over the whole image; beyond 256 positions (the training index mask)
    in two steps, rows then columns."""
    module = _check_one("GlobalMaxPool", shape, 13)
    pools = ops_of(module).count("nn.max_pool2d")
    assert pools == (2 if shape[2] * shape[-1] > 256 else 1)


# --------------------------------------------------------------------------------------
# Normalisations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 4, 3, 3)])
def test_instance_normalization(shape):
    rng = np.random.default_rng(0)
    channels = shape[1]
    initializers = {
        "scale": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "bias": rng.standard_normal(channels).astype(np.float32),
    }
    module = _check_one("InstanceNormalization", shape, 13, ["scale", "bias"],
                        initializers, epsilon=1e-3)
    assert ops_of(module)[-2:] == ["nn.group_norm", "func.return"]
    assert all(p.is_trainable for p in params_of(module).values())


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_normalization(opset, groups):
    """Scale and bias per group at opset 18 (each trainable parameter stays one,
    gathered per channel), per channel since opset 21."""
    rng = np.random.default_rng(groups)
    size = groups if opset < 21 else 6
    initializers = {
        "scale": rng.uniform(0.5, 1.5, size).astype(np.float32),
        "bias": rng.standard_normal(size).astype(np.float32),
    }
    module = _check_one("GroupNormalization", (2, 6, 3, 2), opset, ["scale", "bias"],
                        initializers, num_groups=groups, epsilon=1e-4)
    assert {n: p.type.get_shape() for n, p in params_of(module).items()} == {
        "scale": (size,), "bias": (size,)
    }
    gathers = ops_of(module).count("nn.gather")
    assert gathers == (2 if size != 6 else 0)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization_and_pad_model_trains_like_pytorch(opset):
    """Conv, GroupNormalization, reflect Pad, Relu, GlobalAveragePool, Gemm: the forward
    matches onnxruntime, and one SGD step of `train-full` matches torch autograd on the
    imported model (`test_autodiff_oracles`); at opset 18 each per-group scale and bias
    gets the gradient of all its channels."""
    from test_autodiff_oracles import check_sgd_gradients

    rng = np.random.default_rng(opset)
    groups, size = 2, (2 if opset < 21 else 4)
    initializers = {
        "w": (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, size).astype(np.float32),
        "bias": rng.standard_normal(size).astype(np.float32),
        "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
        "fc_w": rng.standard_normal((3, 4)).astype(np.float32),
        "fc_b": rng.standard_normal(3).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("GroupNormalization", ["c", "scale", "bias"], ["g"],
                         num_groups=groups),
        helper.make_node("Pad", ["g", "pads"], ["p"], mode="reflect"),
        helper.make_node("Relu", ["p"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["a"]),
        helper.make_node("Flatten", ["a"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    model = make_model(nodes, {"x": (3, 3, 6, 6)}, ["y"], initializers, opset)
    feeds = random_inputs({"x": (3, 3, 6, 6)})
    module = check_against_ort(model, feeds)
    labels = np.array([0, 2, 1], np.int32)
    check_sgd_gradients(module, [feeds["x"]], labels, pipeline="train-full")


def test_group_normalization_scale_of_the_wrong_opset_shape_is_unsupported():
    initializers = {"scale": np.ones(6, np.float32), "bias": np.zeros(6, np.float32)}
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"],
                            num_groups=2, name="gn")
    model = make_model([node], {"x": (1, 6, 2, 2)}, ["y"], initializers, opset=18)
    with pytest.raises(UnsupportedOnnxError, match=re.escape(
        "GroupNormalization: scale of shape [6] (opset 18 expects [2], one per group)"
    )):
        import_onnx(model)


# --------------------------------------------------------------------------------------
# Dropout in training mode
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_dropout_is_the_identity_in_both_modes(training):
    """A training-mode Dropout (ratio and training_mode as inputs) and its mask import
    as the identity and an all-true mask: edge-opt trains with dropout off."""
    nodes = [
        helper.make_node("Dropout", ["x", "ratio", "mode"], ["d", "mask"]),
        helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["d", "m"], ["y"]),
    ]
    initializers = {"ratio": np.array(0.3, np.float32), "mode": np.array(training)}
    model = make_model(nodes, {"x": (2, 5)}, ["y"], initializers, opset=13)
    module = import_onnx(model)
    x = random_inputs({"x": (2, 5)})["x"]
    (y,) = run(module, "forward", {"x": x})
    np.testing.assert_array_equal(y, x)


# --------------------------------------------------------------------------------------
# Opsets and the error listing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [MIN_OPSET, 22, 23, MAX_OPSET])
def test_opset_range(opset):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Clip", ["r"], ["y"], **({"max": 6.0} if opset < 11 else {})),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y"], opset=opset)
    check_against_ort(model, random_inputs({"x": (2, 3)}))


def test_opset_beyond_the_range_is_rejected():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (2,)}, ["y"],
                       opset=MAX_OPSET + 1)
    with pytest.raises(UnsupportedOnnxError, match=re.escape(
        f"opset {MAX_OPSET + 1} (supported: {MIN_OPSET}-{MAX_OPSET})"
    )):
        import_onnx(model)


def test_documented_opset_range_is_the_code_s():
    """The user guide and the importer's docstring state the range the code accepts."""
    import edge_opt.frontends.onnx as package

    stated = f"opsets {MIN_OPSET}-{MAX_OPSET}"
    assert stated in (ROOT / "docs" / "user-guide.md").read_text()
    assert stated in package.__doc__
    for text in ((ROOT / "docs" / "user-guide.md").read_text(), package.__doc__):
        ranges = set(re.findall(r"opsets (\d+)[-–](\d+)", text))
        assert ranges == {(str(MIN_OPSET), str(MAX_OPSET))}, ranges


def test_nodes_downstream_of_a_blocker_are_listed_apart():
    """An unsupported op, a Shape and Cast of its result (they would fold once it
    imports) and a Reshape by that shape: the blocker is listed first, the Shape and
    Cast apart as downstream; an unsupported op that reads the blocker's value is a
    blocker too."""
    nodes = [
        helper.make_node("Atan", ["x"], ["a"], name="atan"),
        helper.make_node("Shape", ["a"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["sf"], ["si"], name="cast_back", to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "si"], ["r"], name="reshape"),
        helper.make_node("Cos", ["a"], ["y"], name="cos"),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y", "r"], opset=13)
    with pytest.raises(UnsupportedOnnxError) as info:
        import_onnx(model)
    error = info.value
    assert error.problems == {"Atan": ["atan"], "Cos": ["cos"]}
    assert error.downstream == {"Cast": ["cast", "cast_back"], "Shape": ["shape"]}
    lines = str(error).splitlines()
    assert lines[0] == "the ONNX model has 2 node(s) that edge-opt cannot import (2 kind(s)):"
    assert lines[1:3] == ["  Atan: 1 node ('atan')", "  Cos: 1 node ('cos')"]
    assert lines[3].startswith("and 3 node(s) downstream of them that would fold")
    assert lines[4:] == ["  Cast: 2 nodes (e.g. 'cast')", "  Shape: 1 node ('shape')"]


def test_one_element_initializer_bounds_are_constants():
    """Clip bounds and a Pad value given as [1]-shaped float initializers (which the
    parameter rule would make parameters) are constants of the graph: no parameter."""
    initializers = {
        "lo": np.array([-0.5], np.float32),
        "hi": np.array([0.5], np.float32),
        "pads": np.array([0, 1, 0, 2], np.int64),
        "value": np.array([2.0], np.float32),
    }
    nodes = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
        helper.make_node("Pad", ["c", "pads", "value"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 3)}, ["y"], initializers, opset=13)
    module = check_against_ort(model, random_inputs({"x": (2, 3)}))
    assert params_of(module) == {}
    assert ops_of(module) == ["nn.clip", "nn.pad", "func.return"]
