"""The ONNX importer (`edge_opt.frontends.onnx`), checked against onnxruntime.

- the real models in ../shared/models/deeploy: import, interpret, compare with
  onnxruntime and with the published outputs; print, re-parse, compare again;
- one small graph per op (built with `onnx.helper`), attributes drawn by hypothesis,
  at the opsets where the semantics differ;
- the error paths: every unsupported op listed at once, unreadable files, dynamic inputs;
- the parameter rule (params vs constants, names, trainable flags).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from xdsl.dialects.builtin import f32

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import (
    UnsupportedOnnxError,
    import_onnx,
    sanitize_name,
    value_hint,
)
from edge_opt.ir.model_io import load_model, print_module, save_model
from edge_opt.ir.session import get_function, input_names, output_names, params_of, run
from edge_opt.support.errors import ModelFileError, UserError

ort.set_default_logger_severity(3)

TOLERANCE = 1e-4
"""Max error relative to the max-abs of the reference output."""

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) / max(
        scale, 1e-30
    )


def ort_valid(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> bool:
    """Whether onnxruntime accepts the configuration and produces non-empty outputs
    (hypothesis draws some windows that do not fit)."""
    try:
        return all(r.size for r in ort_run(model, feeds))
    except Exception:
        return False


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, ...]],
    outputs: list[str],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 13,
    extra_opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
            for n, s in inputs.items()
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [
            numpy_helper.from_array(np.asarray(a), n)
            for n, a in (initializers or {}).items()
        ],
    )
    opsets = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()
    ]
    # An IR version every onnxruntime we test with understands.
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def random_inputs(
    inputs: dict[str, tuple[int, ...]], seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs.items()}


def check_against_ort(
    model: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    tolerance: float = TOLERANCE,
):
    """Imports `model`, interprets it and compares every output with onnxruntime;
    returns the module."""
    module = import_onnx(model)
    ours = run(module, "forward", feeds)
    theirs = ort_run(model, feeds)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert relative_error(a, b) <= tolerance
    return module


def single_op(
    op_type: str,
    shape: tuple[int, ...],
    opset: int = 13,
    initializers: dict[str, np.ndarray] | None = None,
    inputs: list[str] | None = None,
    domain: str = "",
    **attributes,
):
    """A one-node model `y = op_type(x, *inputs)` checked against onnxruntime."""
    node = helper.make_node(
        op_type, ["x", *(inputs or [])], ["y"], domain=domain or None, **attributes
    )
    extra = {domain: 1} if domain else None
    model = make_model([node], {"x": shape}, ["y"], initializers, opset, extra)
    return check_against_ort(model, random_inputs({"x": shape}))


def ops_of(module) -> list[str]:
    return [op.name for op in get_function(module, "forward").body.block.ops]


# --------------------------------------------------------------------------------------
# (a) The real models
# --------------------------------------------------------------------------------------

REAL_MODELS = [
    ("CCT_FP32_CCT_1_16_16_8", "network.onnx"),
    ("CCT_FP32_CCT_2_32_32_128", "network.onnx"),
    ("TinyViT_Demo", "network.onnx"),
    ("Autoencoder1D", "network.onnx"),
    ("CCT_Train_CCT2_FT2", "network_infer.onnx"),
    ("CCT_Train_CCT2_LP", "network_infer.onnx"),
    ("CCT_Train_CCT2_LoRA2", "network_infer.onnx"),
]


def _graph_inputs(model: onnx.ModelProto) -> list[str]:
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _feeds(
    model: onnx.ModelProto, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The graph inputs from inputs.npz: by name, or (TinyViT, Autoencoder1D, which
    store `arr_0` = the input followed by copies of the weights) by position."""
    names = _graph_inputs(model)
    if all(n in arrays for n in names):
        return {n: arrays[n] for n in names}
    assert len(names) == 1
    return {names[0]: arrays["arr_0"]}


def _ort_compatible(model: onnx.ModelProto) -> onnx.ModelProto:
    """Deeploy's CCT_2_32_32_128 fuses MatMul + Add into a Gemm on rank-3 operands,
    which onnxruntime rejects; for the oracle, split it back."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    initializers = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        b = initializers.get(node.input[1]) if node.op_type == "Gemm" else None
        if b is not None and len(b.dims) != 2:
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            assert (
                attributes.get("alpha", 1.0) == 1.0
                and attributes.get("beta", 1.0) == 1.0
            )
            assert not attributes.get("transA", 0) and not attributes.get("transB", 0)
            product = node.output[0] + "__matmul"
            nodes.append(helper.make_node("MatMul", node.input[:2], [product]))
            nodes.append(helper.make_node("Add", [product, node.input[2]], node.output))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name, file", REAL_MODELS, ids=[m[0] for m in REAL_MODELS])
def test_real_model_matches_onnxruntime(name: str, file: str, tmp_path, shared_model):
    folder = shared_model(name)
    model = onnx.load(folder / file)
    feeds = _feeds(model, dict(np.load(folder / "inputs.npz")))
    module = import_onnx(folder / file)
    assert input_names(get_function(module, "forward")) == list(feeds)
    ours = run(module, "forward", feeds)

    (reference,) = ort_run(_ort_compatible(model), feeds)
    assert relative_error(ours[0], reference) <= TOLERANCE

    # outputs.npz holds the logits except for the training fixtures (updated weights).
    if not name.startswith("CCT_Train"):
        expected = dict(np.load(folder / "outputs.npz"))
        (output,) = output_names(get_function(module, "forward"))
        if output not in expected:  # TinyViT, Autoencoder1D: one unnamed output
            assert len(expected) == 1
        value = expected.get(output, next(iter(expected.values())))
        assert relative_error(ours[0], value) <= TOLERANCE

    # Printed (weights in the sidecar .npz), re-parsed: the same numbers.
    path = tmp_path / "model.mlir"
    save_model(module, path)
    reloaded = load_model(path)
    again = run(reloaded, "forward", feeds)
    np.testing.assert_array_equal(again[0], ours[0])
    assert print_module(reloaded) == print_module(module)


@pytest.mark.slow
def test_import_is_deterministic(shared_model):
    folder = shared_model("TinyViT_Demo")
    first = print_module(import_onnx(folder / "network.onnx"))
    second = print_module(import_onnx(str(folder / "network.onnx")))
    assert first == second


# --------------------------------------------------------------------------------------
# (d) Parameters of the real models
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cct2_infer_parameters(shared_model):
    folder = shared_model("CCT_Train_CCT2_LP")
    params = params_of(import_onnx(folder / "network_infer.onnx"))
    assert sum(math.prod(p.type.get_shape()) for p in params.values()) == 283_979
    assert len(params) == 37
    expected = {
        "classifier_fc_weight": (10, 128),
        "classifier_fc_bias": (10,),
        "classifier_attention_pool_bias": (1,),
        "tokenizer_conv_layers_0_0_weight": (64, 3, 3, 3),
        "classifier_positional_emb": (1, 64, 128),
        "classifier_norm_weight": (128,),
        "node_0_classifier_blocks_0_self_attn_q_proj_Transpose__0": (128, 128),
    }
    for name, shape in expected.items():
        assert tuple(params[name].type.get_shape()) == shape
        assert params[name].is_trainable
        assert params[name].value is not None
    # Rank-0 literals (Pow's 2.0, the layer-norm epsilon, the attention scale) are not
    # parameters.
    assert all(p.type.get_shape() != () for p in params.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture", ["CCT_Train_CCT2_FT2", "CCT_Train_CCT2_LP", "CCT_Train_CCT2_LoRA2"]
)
def test_trainable_fixture_keys_are_parameters(fixture: str, shared_model):
    folder = shared_model(fixture)
    params = params_of(import_onnx(folder / "network_infer.onnx"))
    updated = np.load(folder / "outputs.npz")
    for key in updated.files:
        name = key.removesuffix("_updated")
        assert name in params, name
        assert tuple(params[name].type.get_shape()) == updated[key].shape


@pytest.mark.slow
def test_batch_norm_statistics_are_frozen_parameters(shared_model):
    folder = shared_model("Autoencoder1D")
    module = import_onnx(folder / "network.onnx")
    params = params_of(module)
    assert sum(math.prod(p.type.get_shape()) for p in params.values()) == 83_600
    frozen = sorted(n for n, p in params.items() if not p.is_trainable)
    assert len(frozen) == 8
    assert all(n.endswith(("running_mean", "running_var")) for n in frozen)
    assert params["encoder_linear_weight"].is_trainable
    # The weights listed as graph inputs are parameters, not arguments.
    assert input_names(get_function(module, "forward")) == ["input"]
    assert "nn.linear" in ops_of(module) and "nn.conv_transpose2d" in ops_of(module)


@pytest.mark.slow
def test_tinyvit_tied_parameters_and_folded_shape_chains(shared_model):
    folder = shared_model("TinyViT_Demo")
    # The exporter merged equal-valued tensors (zero biases, unit norm scales) and
    # recorded it as `Identity(kept) -> merged name`: by default each merged name is its
    # own parameter again; untie="none" keeps the file's 1,406 values.
    graph = onnx.load(folder / "network.onnx").graph
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    merged = {
        n.output[0]: sizes[n.input[0]]
        for n in graph.node
        if n.op_type == "Identity" and n.input[0] in sizes
    }
    tied = params_of(import_onnx(folder / "network.onnx", untie="none"))
    assert sum(math.prod(p.type.get_shape()) for p in tied.values()) == 1_406
    module = import_onnx(folder / "network.onnx")
    params = params_of(module)
    assert len(merged) == 43 and set(map(sanitize_name, merged)) <= set(params)
    assert params["norm_head_bias"].is_trainable
    assert sum(math.prod(p.type.get_shape()) for p in params.values()) == 1_406 + sum(
        merged.values()
    )
    assert "onnx__Conv_878" in params and "head_weight" in params
    ops = ops_of(module)
    # The Shape -> Slice -> Concat -> Reshape chains are folded: no integer constants.
    constants = [
        op
        for op in get_function(module, "forward").body.block.ops
        if isinstance(op, nn.ConstantOp)
    ]
    assert all(c.result.type.element_type == f32 for c in constants)
    assert ops.count("nn.gelu") == 12
    assert ops.count("nn.slice") == 12  # the q/k/v splits


# --------------------------------------------------------------------------------------
# (b) One op at a time
# --------------------------------------------------------------------------------------


@st.composite
def conv_cases(draw, transpose: bool = False):
    rank = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    sizes = [draw(st.integers(3, 7)) for _ in range(rank)]
    auto_pad = draw(
        st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"])
    )
    attributes = dict(
        kernel_shape=kernel, strides=strides, dilations=dilations, group=groups
    )
    if auto_pad == "NOTSET":
        attributes["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    else:
        attributes["auto_pad"] = auto_pad
    if transpose:
        outer = [
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(strides, dilations)
        ]
        if auto_pad == "NOTSET" and draw(st.booleans()):
            attributes["output_padding"] = outer
        weight_shape = (c_in, c_out // groups, *kernel)
    else:
        weight_shape = (c_out, c_in // groups, *kernel)
    bias = draw(st.booleans())
    return (1, c_in, *sizes), weight_shape, c_out, bias, attributes


def _conv_model(op_type, x_shape, w_shape, c_out, bias, attributes, opset=13):
    rng = np.random.default_rng(1)
    initializers = {"w": rng.standard_normal(w_shape).astype(np.float32)}
    inputs = ["x", "w"]
    if bias:
        initializers["b"] = rng.standard_normal(c_out).astype(np.float32)
        inputs.append("b")
    node = helper.make_node(op_type, inputs, ["y"], **attributes)
    return make_model([node], {"x": x_shape}, ["y"], initializers, opset)


@SETTINGS
@given(conv_cases())
def test_conv(case):
    x_shape, w_shape, c_out, bias, attributes = case
    model = _conv_model("Conv", x_shape, w_shape, c_out, bias, attributes)
    assume(ort_valid(model, random_inputs({"x": x_shape})))
    module = check_against_ort(model, random_inputs({"x": x_shape}))
    if len(x_shape) == 3:
        assert ops_of(module)[-3:] == ["nn.conv2d", "nn.squeeze", "func.return"]


@SETTINGS
@given(conv_cases(transpose=True))
def test_conv_transpose(case):
    x_shape, w_shape, c_out, bias, attributes = case
    model = _conv_model("ConvTranspose", x_shape, w_shape, c_out, bias, attributes)
    assume(ort_valid(model, random_inputs({"x": x_shape})))
    check_against_ort(model, random_inputs({"x": x_shape}))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_dilated_same_conv_follows_the_spec(auto_pad: str):
    """onnxruntime rejects it; the ONNX reference implementation is the oracle."""
    from onnx.reference import ReferenceEvaluator

    w = np.random.default_rng(2).standard_normal((3, 2, 3, 2)).astype(np.float32)
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"], strides=[2, 1], dilations=[2, 3], auto_pad=auto_pad
    )
    model = make_model([node], {"x": (1, 2, 7, 6)}, ["y"], {"w": w})
    feeds = random_inputs({"x": (1, 2, 7, 6)})
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    (y,) = run(import_onnx(model), "forward", feeds)
    assert y.shape == (1, 3, 4, 6)
    assert relative_error(y, expected) <= TOLERANCE


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("output_shape", [[9, 8], [8, 7], [10, 10], [7, 6]])
def test_conv_transpose_output_shape(auto_pad: str, output_shape: list[int]):
    w = np.random.default_rng(2).standard_normal((2, 3, 3, 3)).astype(np.float32)
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w"],
        ["y"],
        strides=[2, 2],
        output_shape=output_shape,
        auto_pad=auto_pad,
    )
    model = make_model([node], {"x": (1, 2, 4, 4)}, ["y"], {"w": w})
    check_against_ort(model, random_inputs({"x": (1, 2, 4, 4)}))


@st.composite
def pool_cases(draw, average: bool):
    rank = draw(st.sampled_from([1, 2]))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    sizes = [draw(st.integers(3, 8)) for _ in range(rank)]
    attributes = dict(kernel_shape=kernel, strides=strides)
    auto_pad = draw(
        st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"])
    )
    if auto_pad == "NOTSET":
        attributes["pads"] = [draw(st.integers(0, k // 2)) for k in kernel * 2]
        attributes["ceil_mode"] = draw(st.sampled_from([0, 1]))
    else:
        attributes["auto_pad"] = auto_pad
        # (a window smaller than the stride: see test_same_pooling_that_crops)
        attributes["strides"] = [min(s, k) for s, k in zip(strides, kernel)]
    if average:
        attributes["count_include_pad"] = draw(st.sampled_from([0, 1]))
    elif auto_pad == "NOTSET" and draw(st.booleans()):
        # (dilated SAME pooling is not supported: onnxruntime departs from the spec)
        attributes["dilations"] = [draw(st.integers(1, 2)) for _ in range(rank)]
    # The window must fit the padded input (onnxruntime rounds a negative window count
    # towards zero and returns one window where the spec has none).
    pads = attributes.get("pads", [0] * (2 * rank))
    dilations = attributes.get("dilations", [1] * rank)
    for axis in range(rank):
        span = dilations[axis] * (kernel[axis] - 1) + 1
        assume(sizes[axis] + pads[axis] + pads[axis + rank] >= span)
    return (2, 3, *sizes), attributes


@SETTINGS
@given(pool_cases(average=False))
def test_max_pool(case):
    shape, attributes = case
    model = make_model(
        [helper.make_node("MaxPool", ["x"], ["y"], **attributes)], {"x": shape}, ["y"]
    )
    assume(ort_valid(model, random_inputs({"x": shape})))
    single_op("MaxPool", shape, **attributes)


@SETTINGS
@given(pool_cases(average=True), st.sampled_from([13, 19]))
def test_average_pool(case, opset):
    shape, attributes = case
    model = make_model(
        [helper.make_node("AveragePool", ["x"], ["y"], **attributes)],
        {"x": shape},
        ["y"],
        opset=opset,
    )
    assume(ort_valid(model, random_inputs({"x": shape})))
    check_against_ort(model, random_inputs({"x": shape}))


def test_same_pooling_that_crops_is_unsupported():
    """The spec's SAME padding is negative here; onnxruntime crops the input for
    AveragePool (and rejects MaxPool)."""
    node = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        name="crop",
        kernel_shape=[1],
        strides=[3],
        auto_pad="SAME_UPPER",
    )
    with pytest.raises(UnsupportedOnnxError, match="window smaller than the stride"):
        import_onnx(make_model([node], {"x": (1, 2, 3)}, ["y"]))


def test_global_average_pool():
    single_op("GlobalAveragePool", (2, 3, 5, 4))
    single_op("GlobalAveragePool", (2, 3, 5))


@SETTINGS
@given(
    st.sampled_from([(4, 3), (2, 4, 3)]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1.0, 0.5]),
    st.sampled_from([1.0, 2.0, 0.0]),
    st.sampled_from([None, (5,), (1, 5), (), (4, 5)]),
)
def test_gemm(a_shape, trans_a, trans_b, alpha, beta, c_shape):
    assume(len(a_shape) == 2 or not trans_a)
    m, k = a_shape[-2:]
    if trans_a:
        a_shape = (k, m)
    rng = np.random.default_rng(3)
    initializers = {
        "b": rng.standard_normal((5, k) if trans_b else (k, 5)).astype(np.float32)
    }
    inputs = ["x", "b"]
    if c_shape is not None:
        initializers["c"] = rng.standard_normal(c_shape).astype(np.float32)
        inputs.append("c")
    node = helper.make_node(
        "Gemm",
        inputs,
        ["y"],
        transA=int(trans_a),
        transB=int(trans_b),
        alpha=alpha,
        beta=beta,
    )
    model = make_model([node], {"x": a_shape}, ["y"], initializers)
    feeds = random_inputs({"x": a_shape})
    if len(a_shape) == 2:
        module = check_against_ort(model, feeds)
    else:  # Deeploy's batched Gemm: compare with MatMul semantics
        module = import_onnx(model)
        (y,) = run(module, "forward", feeds)
        b = initializers["b"].T if trans_b else initializers["b"]
        expected = alpha * feeds["x"] @ b
        if c_shape is not None:
            expected = expected + beta * initializers["c"]
        assert relative_error(y, expected) <= TOLERANCE
    linear = (
        trans_b
        and not trans_a
        and alpha == 1.0
        and beta == 1.0
        and c_shape in ((5,), (1, 5))
    )
    if linear:
        assert ops_of(module)[-2] == "nn.linear"


@SETTINGS
@given(
    st.sampled_from([(3,), (2, 3), (4, 2, 3), (1, 2, 3)]),
    st.sampled_from([(3,), (3, 4), (2, 3, 4), (4, 1, 3, 4), (1, 3, 4)]),
)
def test_matmul(a_shape, b_shape):
    try:
        np.matmul(np.zeros(a_shape), np.zeros(b_shape))
    except ValueError:
        assume(False)
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    model = make_model([node], {"a": a_shape, "b": b_shape}, ["y"])
    check_against_ort(model, random_inputs({"a": a_shape, "b": b_shape}))


@pytest.mark.parametrize("op_type", ["Add", "Sub", "Mul", "Div", "Pow"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((2, 3), ())])
def test_binary_broadcast(op_type, shapes):
    a_shape, b_shape = shapes
    node = helper.make_node(op_type, ["a", "b"], ["y"])
    model = make_model([node], {"a": a_shape, "b": b_shape}, ["y"])
    feeds = random_inputs({"a": a_shape, "b": b_shape})
    if op_type == "Pow":
        feeds["a"] = np.abs(feeds["a"]) + 0.5
    check_against_ort(model, feeds)


def test_pow_with_integer_exponent_constant():
    exponent = numpy_helper.from_array(np.array(3, dtype=np.int64), "e")
    node = helper.make_node("Pow", ["x", "e"], ["y"])
    model = make_model([node], {"x": (2, 3)}, ["y"])
    model.graph.initializer.append(exponent)
    module = check_against_ort(model, random_inputs({"x": (2, 3)}))
    assert params_of(module) == {}


@pytest.mark.parametrize(
    "op_type",
    ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Sqrt", "Log", "HardSwish"],
)
def test_unary(op_type):
    node = helper.make_node(op_type, ["x"], ["y"])
    model = make_model([node], {"x": (2, 3, 4)}, ["y"], opset=14)
    feeds = random_inputs({"x": (2, 3, 4)})
    if op_type in ("Sqrt", "Log"):
        feeds["x"] = np.abs(feeds["x"]) + 0.1
    check_against_ort(model, feeds)


@pytest.mark.parametrize("approximate", [None, "none", "tanh"])
def test_gelu_opset20(approximate):
    attributes = {} if approximate is None else {"approximate": approximate}
    module = single_op("Gelu", (2, 8), opset=20, **attributes)
    (gelu,) = [
        op
        for op in get_function(module, "forward").body.block.ops
        if isinstance(op, nn.GeluOp)
    ]
    assert gelu.approximate.data == (approximate or "none")


def test_microsoft_gelu_opset12():
    single_op("Gelu", (2, 8), opset=12, domain="com.microsoft")


@SETTINGS
@given(
    st.sampled_from(["Softmax", "LogSoftmax"]),
    st.sampled_from([12, 13]),
    st.one_of(st.none(), st.integers(-4, 3)),
)
def test_softmax(op_type, opset, axis):
    attributes = {} if axis is None else {"axis": axis}
    module = single_op(op_type, (2, 3, 4, 5), opset=opset, **attributes)
    effective = (1 if opset < 13 else -1) if axis is None else axis
    if opset < 13 and effective % 4 != 3:
        assert "nn.reshape" in ops_of(module)  # coerced to 2-D
    else:
        assert "nn.reshape" not in ops_of(module)


@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_normalization(axis, bias):
    shape = (2, 3, 4)
    normalized = shape[axis:]
    rng = np.random.default_rng(4)
    initializers = {"s": rng.standard_normal(normalized).astype(np.float32)}
    inputs = ["s"]
    if bias:
        initializers["b"] = rng.standard_normal(normalized).astype(np.float32)
        inputs.append("b")
    single_op(
        "LayerNormalization",
        shape,
        opset=17,
        initializers=initializers,
        inputs=inputs,
        axis=axis,
        epsilon=1e-3,
    )


def test_layer_normalization_broadcast_scale():
    rng = np.random.default_rng(4)
    initializers = {
        "s": rng.standard_normal((4,)).astype(np.float32),
        "b": rng.standard_normal((1, 4)).astype(np.float32),
    }
    single_op(
        "LayerNormalization",
        (2, 3, 4),
        opset=17,
        initializers=initializers,
        inputs=["s", "b"],
        axis=-2,
    )


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 6), (4, 3)])
def test_batch_normalization(shape):
    rng = np.random.default_rng(5)
    names = ["scale", "bias", "mean", "var"]
    initializers = {n: rng.standard_normal(shape[1]).astype(np.float32) for n in names}
    initializers["var"] = np.abs(initializers["var"]) + 0.5
    module = single_op(
        "BatchNormalization",
        shape,
        opset=15,
        initializers=initializers,
        inputs=names,
        epsilon=1e-3,
    )
    params = params_of(module)
    assert [params[n].is_trainable for n in names] == [True, True, False, False]


_TARGETS = [(0, -1), (-1, 4), (2, 0, 2, 2), (24,), (0, 0, 4), (1, 2, 3, 4)]


@pytest.mark.parametrize(
    "target, allowzero",
    # (with allowzero=1 a 0 makes an empty tensor, which we do not support)
    [(t, 0) for t in _TARGETS] + [(t, 1) for t in _TARGETS if 0 not in t],
)
def test_reshape(target, allowzero):
    module = single_op(
        "Reshape",
        (2, 3, 4),
        opset=14,
        initializers={"s": np.array(target, dtype=np.int64)},
        inputs=["s"],
        allowzero=allowzero,
    )
    assert "nn.constant" not in ops_of(module)  # the shape is folded into the type


def test_reshape_allowzero_to_an_empty_tensor_is_unsupported():
    node = helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1)
    model = make_model([node], {"x": (2, 3)}, ["y"], {"s": np.array([0, 6])}, 14)
    with pytest.raises(UnsupportedOnnxError, match="Reshape"):
        import_onnx(model)


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1]])
def test_transpose(perm):
    attributes = {} if perm is None else {"perm": perm}
    single_op("Transpose", (2, 3, 4), **attributes)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, 3])
def test_flatten(axis):
    single_op("Flatten", (2, 3, 4), axis=axis)


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("axes", [None, [1], [-1, 1]])
def test_squeeze(opset, axes):
    shape = (2, 1, 3, 1)
    if axes is None:
        single_op("Squeeze", shape, opset=opset)
    elif opset < 13:
        single_op("Squeeze", shape, opset=opset, axes=axes)
    else:
        single_op(
            "Squeeze",
            shape,
            opset=opset,
            initializers={"a": np.array(axes, dtype=np.int64)},
            inputs=["a"],
        )


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("axes", [[0], [-1], [1, 3]])
def test_unsqueeze(opset, axes):
    if opset < 13:
        single_op("Unsqueeze", (2, 3), opset=opset, axes=axes)
    else:
        single_op(
            "Unsqueeze",
            (2, 3),
            opset=opset,
            initializers={"a": np.array(axes, dtype=np.int64)},
            inputs=["a"],
        )


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = {"a": (2, 3, 4), "b": (2, 3, 4)}
    node = helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=axis)
    c = np.ones((2, 3, 4), np.float32)
    model = make_model([node], shapes, ["y"], {"c": c})
    check_against_ort(model, random_inputs(shapes))


_BOUND = st.one_of(st.integers(-7, 7), st.sampled_from([2**63 - 1, -(2**63)]))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 2), _BOUND, _BOUND, st.sampled_from([1, 2, -1, -2, 3])
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0] % 3,
    ),
)
def test_slice_inputs(spec):
    shape = (4, 5, 6)
    axes, starts, ends, steps = (np.array(v, dtype=np.int64) for v in zip(*spec))
    sizes = [
        len(range(*slice(int(b), int(e), int(s)).indices(shape[a % 3])))
        for a, b, e, s in spec
    ]
    assume(all(sizes))
    single_op(
        "Slice",
        shape,
        opset=13,
        initializers={"s": starts, "e": ends, "a": axes, "t": steps},
        inputs=["s", "e", "a", "t"],
    )


def test_slice_without_axes_and_steps():
    single_op(
        "Slice",
        (4, 5),
        opset=13,
        initializers={"s": np.array([1, -3]), "e": np.array([100, -1])},
        inputs=["s", "e"],
    )


def test_slice_attribute_form():
    single_op("Slice", (4, 5, 6), opset=9, starts=[1, -4], ends=[1000, -1], axes=[0, 2])


@pytest.mark.parametrize(
    "indices, axis",
    [
        (np.array([2, 0, 2], np.int64), 0),  # repeats, any order
        (np.array([-1, 1], np.int64), 1),  # negative: from the end
        (np.array(3, np.int64), -1),  # a scalar index drops the axis
        (np.array(-2, np.int32), 1),
        (np.array([[0, 1], [1, 0], [2, 2]], np.int64), 2),  # 2-D indices
    ],
    ids=["repeats", "negative", "scalar", "scalar-negative-int32", "2-d"],
)
def test_gather(indices, axis):
    module = single_op(
        "Gather", (3, 4, 5), initializers={"i": indices}, inputs=["i"], axis=axis
    )
    assert "nn.gather" in ops_of(module)


def test_gather_of_a_parameter_keeps_it_trainable():
    """An embedding-style lookup with constant indices: the table stays a parameter."""
    table = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "i"], ["rows"], axis=0),
        helper.make_node("Add", ["x", "rows"], ["y"]),
    ]
    model = make_model(
        nodes, {"x": (3, 4)}, ["y"], {"table": table, "i": np.array([5, 0, 5])}
    )
    module = check_against_ort(model, random_inputs({"x": (3, 4)}))
    assert [p.sym_name.data for p in params_of(module).values()] == ["table"]
    assert params_of(module)["table"].is_trainable


def test_gather_with_input_indices_is_unsupported():
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["y"], name="lookup")],
        "test",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, (3, 2)),
            helper.make_tensor_value_info("i", TensorProto.INT64, (2,)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    )
    with pytest.raises(UnsupportedOnnxError) as info:
        import_onnx(model)
    assert info.value.problems["Gather: non-constant indices"] == ["lookup"]


@pytest.mark.parametrize("op_type", ["ReduceMean", "ReduceSum"])
@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes", [None, [1], [0, -1]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce(op_type, opset, axes, keepdims):
    axes_as_input = op_type == "ReduceSum" or opset >= 18
    attributes = {"keepdims": keepdims}
    initializers, inputs = None, None
    if axes is not None:
        if axes_as_input:
            initializers, inputs = {"a": np.array(axes, dtype=np.int64)}, ["a"]
        else:
            attributes["axes"] = axes
    single_op(
        op_type,
        (2, 3, 4),
        opset=opset,
        initializers=initializers,
        inputs=inputs,
        **attributes,
    )


@pytest.mark.parametrize("op_type, opset", [("ReduceSum", 13), ("ReduceMean", 18)])
def test_reduce_noop_with_empty_axes(op_type, opset):
    module = single_op(op_type, (2, 3), opset=opset, noop_with_empty_axes=1)
    assert ops_of(module) == ["func.return"]


def test_constant_identity_dropout():
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["c"],
            value=numpy_helper.from_array(
                np.arange(4, dtype=np.float32).reshape(1, 4), "c"
            ),
        ),
        helper.make_node("Constant", [], ["k"], value_float=2.0),
        helper.make_node("Identity", ["x"], ["i"]),
        helper.make_node("Dropout", ["i"], ["d"]),
        helper.make_node("Add", ["d", "c"], ["s"]),
        helper.make_node("Mul", ["s", "k"], ["y"]),
    ]
    model = make_model(nodes, {"x": (3, 4)}, ["y"], opset=13)
    module = check_against_ort(model, random_inputs({"x": (3, 4)}))
    assert ops_of(module) == [
        "nn.constant",
        "nn.add",
        "nn.constant",
        "nn.mul",
        "func.return",
    ]


def test_shape_chains_fold():
    """Shape of a computed value, Gather, Concat, Reshape: all folded."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["y"]),
    ]
    initializers = {
        "zero": np.array(0, np.int64),
        "axes": np.array([0], np.int64),
        "minus_one": np.array([-1], np.int64),
    }
    model = make_model(nodes, {"x": (2, 3, 4)}, ["y"], initializers, opset=13)
    module = check_against_ort(model, random_inputs({"x": (2, 3, 4)}))
    assert ops_of(module) == ["nn.relu", "nn.reshape", "func.return"]


def test_shape_with_start_and_size_fold():
    """(2, 3, 4) -> (Size / 3, 3) = (8, 3), all from Shape(start, end) and Size."""
    nodes = [
        helper.make_node("Shape", ["x"], ["three"], start=1, end=2),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Div", ["n", "three"], ["rows"]),
        helper.make_node("Concat", ["rows", "three"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 3, 4)}, ["y"], opset=15)
    module = check_against_ort(model, random_inputs({"x": (2, 3, 4)}))
    assert ops_of(module) == ["nn.reshape", "func.return"]


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_types(dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = np.random.default_rng(7).standard_normal((3, 4)).astype(dtype)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Relu", ["h"], ["y"]),
        ],
        "typed",
        [helper.make_tensor_value_info("x", elem, (2, 3))],
        [helper.make_tensor_value_info("y", elem, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    )
    feeds = {"x": np.random.default_rng(8).standard_normal((2, 3)).astype(dtype)}
    module = check_against_ort(
        model, feeds, tolerance=1e-2 if dtype == np.float16 else 1e-12
    )
    assert params_of(module)["w"].type.element_type != f32


def test_graph_outputs_that_are_constants_parameters_and_inputs():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    nodes = [
        helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0]),
        helper.make_node("Identity", ["w"], ["w_out"]),
    ]
    model = make_model(nodes, {"x": (2,)}, ["c", "w_out", "x"], {"w": w})
    check_against_ort(model, random_inputs({"x": (2,)}))


# --------------------------------------------------------------------------------------
# Parameters, names and the function signature
# --------------------------------------------------------------------------------------


def test_parameter_rule_and_names():
    rng = np.random.default_rng(6)
    initializers = {
        "layer.0.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "layer_0_weight": rng.standard_normal((3,)).astype(np.float32),
        "0bias": rng.standard_normal((3,)).astype(np.float32),
        "forward": rng.standard_normal((3,)).astype(np.float32),
        "two": np.array([2.0], np.float32),
        "eps": np.array([1e-5], np.float32),
        "scale": np.array(0.5, np.float32),
        "unused": np.ones(3, np.float32),
    }
    nodes = [
        helper.make_node(
            "Gemm", ["x", "layer.0.weight", "layer_0_weight"], ["h"], transB=1
        ),
        helper.make_node("Add", ["h", "0bias"], ["h1"]),
        helper.make_node("Mul", ["h1", "forward"], ["h2"]),
        helper.make_node("Pow", ["h2", "two"], ["p"]),
        helper.make_node("Add", ["p", "eps"], ["pe"]),
        helper.make_node("Sqrt", ["pe"], ["r"]),
        helper.make_node("Mul", ["r", "scale"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 4)}, ["y"], initializers)
    module = check_against_ort(model, random_inputs({"x": (2, 4)}))
    params = params_of(module)
    assert list(params) == [
        "layer_0_weight_1",
        "layer_0_weight",
        "p_0bias",
        "forward_1",
    ]
    assert all(p.is_trainable for p in params.values())
    constants = [
        op
        for op in get_function(module, "forward").body.block.ops
        if isinstance(op, nn.ConstantOp)
    ]
    assert len(constants) == 3  # 2.0, 1e-5, 0.5


def test_sanitize_name_and_value_hint():
    assert sanitize_name("classifier.fc.weight") == "classifier_fc_weight"
    assert sanitize_name("onnx::MatMul_943") == "onnx__MatMul_943"
    assert sanitize_name("876") == "p_876"
    assert value_hint("/layers.0/Conv_output_0") == "layers_0_Conv_output"
    assert value_hint("876") is None


def test_signature_carries_onnx_names():
    nodes = [helper.make_node("Add", ["in.a", "in:b"], ["out/0"])]
    model = make_model(nodes, {"in.a": (2,), "in:b": (2,)}, ["out/0"])
    module = import_onnx(model)
    function = get_function(module, "forward")
    assert input_names(function) == ["in.a", "in:b"]
    assert output_names(function) == ["out/0"]
    (y,) = run(module, "forward", {"in.a": np.ones(2), "in:b": np.ones(2)})
    np.testing.assert_array_equal(y, [2.0, 2.0])


def test_unsorted_graph_is_sorted():
    nodes = [
        helper.make_node("Relu", ["h"], ["y"]),
        helper.make_node("Neg", ["x"], ["h"]),
    ]
    module = check_against_ort(
        make_model(nodes, {"x": (3,)}, ["y"]), random_inputs({"x": (3,)})
    )
    assert ops_of(module) == ["nn.neg", "nn.relu", "func.return"]


def test_dynamic_input_needs_a_shape():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], {"x": ("batch", 3)}, ["y"]
    )
    with pytest.raises(UserError, match=r"dynamic shape \[batch, 3\].*input_shapes"):
        import_onnx(model)
    module = import_onnx(model, input_shapes={"x": (4, 3)})
    assert get_function(module, "forward").function_type.inputs.data[0].get_shape() == (
        4,
        3,
    )
    with pytest.raises(UserError, match="does not match"):
        import_onnx(model, input_shapes={"x": (4, 5)})
    with pytest.raises(UserError, match="not inputs"):
        import_onnx(model, input_shapes={"z": (4, 3)})


# --------------------------------------------------------------------------------------
# (c) Errors
# --------------------------------------------------------------------------------------


def test_unsupported_ops_are_all_listed():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Cos", ["a"], ["b"], name="cos_1"),
        helper.make_node("Cos", ["b"], ["c"], name="cos_2"),
        helper.make_node("Atan", ["c"], ["d"], name="atan"),
        helper.make_node(
            "FusedThing", ["d"], ["e"], name="fused", domain="com.example"
        ),
        helper.make_node("Conv", ["e", "w"], ["f"], name="conv3d"),
        helper.make_node("Softmax", ["f"], ["y"], name="ok_after_error"),
    ]
    initializers = {"w": np.ones((1, 1, 1, 1, 1), np.float32)}
    model = make_model(nodes, {"x": (1, 1, 2, 2, 2)}, ["y"], initializers)
    with pytest.raises(UnsupportedOnnxError) as info:
        import_onnx(model)
    problems = info.value.problems
    assert problems["Cos"] == ["cos_1", "cos_2"]
    assert problems["Atan"] == ["atan"]
    assert problems["com.example.FusedThing"] == ["fused"]
    assert len(problems) == 3  # Conv and Softmax read poisoned values: not reported
    message = str(info.value)
    assert "Cos: 2 nodes (e.g. 'cos_1')" in message
    assert "Atan: 1 node ('atan')" in message
    assert "com.example.FusedThing" in message


def test_unsupported_attributes_are_listed():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c3", kernel_shape=[1, 1, 1]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(
            "AveragePool",
            ["r"],
            ["p"],
            name="dilated",
            kernel_shape=[2, 2, 2],
            dilations=[2, 2, 2],
        ),
        helper.make_node("Selu", ["r"], ["l"], name="selu"),
        helper.make_node("Softmax", ["r"], ["s"], name="odd", foo=1),
    ]
    model = make_model(
        nodes,
        {"x": (1, 1, 4, 4, 4)},
        ["a", "p", "l", "s"],
        {"w": np.ones((1, 1, 1, 1, 1), np.float32)},
        opset=19,
    )
    with pytest.raises(UnsupportedOnnxError) as info:
        import_onnx(model)
    problems = info.value.problems
    assert problems["Conv: 3-D convolution (only 1-D and 2-D)"] == ["c3"]
    assert problems["AveragePool: 3-D pooling (only 1-D and 2-D)"] == ["dilated"]
    assert problems["Selu"] == ["selu"]
    assert problems["Softmax: attribute foo"] == ["odd"]


def test_used_optional_outputs_are_unsupported():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])
    ]
    model = make_model(nodes, {"x": (1, 1, 4, 4)}, ["y", "idx"])
    with pytest.raises(
        UnsupportedOnnxError, match=r"MaxPool: output 1 \(idx\): 1 node"
    ):
        import_onnx(model)
    # Unused, it is fine.
    check_against_ort(
        make_model(nodes, {"x": (1, 1, 4, 4)}, ["y"]),
        random_inputs({"x": (1, 1, 4, 4)}),
    )


def test_non_constant_shape_argument_is_unsupported():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="dyn")]
    model = make_model(nodes, {"x": (2, 3)}, ["y"])
    model.graph.input.append(helper.make_tensor_value_info("s", TensorProto.INT64, [2]))
    with pytest.raises(UnsupportedOnnxError, match="non-constant shape"):
        import_onnx(model)


def test_unreadable_files(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\x00 this is not protobuf \x12\x34")
    with pytest.raises(ModelFileError):
        import_onnx(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        import_onnx(empty)
    with pytest.raises(ModelFileError):
        import_onnx(garbage.read_bytes())


def test_import_from_bytes():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (2,)}, ["y"])
    module = import_onnx(model.SerializeToString())
    assert print_module(module) == print_module(import_onnx(model))


def test_dangling_input_is_a_model_file_error():
    model = make_model(
        [helper.make_node("Relu", ["nowhere"], ["y"])], {"x": (2,)}, ["y"]
    )
    with pytest.raises(ModelFileError, match="nowhere"):
        import_onnx(model)
