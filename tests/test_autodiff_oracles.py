"""`@train_step` (the `autodiff` pass and the training pipelines) against two
oracles nobody here wrote: PyTorch autograd + `torch.optim`, and the published CCT
training fixtures of Deeploy.

The torch side is `torch_reference.TorchModel`: `@forward` evaluated op by op with
`torch.nn.functional`, parameters as leaf tensors that require grad exactly when they
train. It runs in float64, so the reference is the exact gradient up to float64
rounding and what we measure is our float32 error.

- Plain SGD: our gradient is `(before - after) / lr` (lr = 1, so that the float32
  rounding of `after` does not hide small gradients), compared per parameter with
  `torch.autograd.grad`, relative to the max-abs of the reference gradient. Frozen
  parameters must come out bit-identical.
- Weight decay, momentum (+ Nesterov) and Adam: three `train_step`s against three
  `torch.optim` steps; the parameters' total change, the loss of each step and the
  optimizer state (momentum buffers, Adam moments and step count) must agree.
- Models: `examples/tiny_cnn.mlir` (conv, inference batch norm, relu, max-pool, global
  average pool, linear; batch 4) with every loss and optimizer; a conv net built here
  (training-mode batch norm, depthwise conv, group norm, padded average pools,
  transposed conv, asymmetric max-pool, layer norm; batch 3); a token model built here
  (attention with both matmul transpose flags, a parameter loaded twice, every
  element-wise op, both gelu forms, slices with negative steps, concat, broadcast,
  reductions; batch 3); an attention model built here (two `nn.attention` blocks, with
  and without biases, dk != dv; batch 3; measured worst 7e-7); the imported CCT2 of
  Deeploy; frozen/trainable mixes of them.
- The acceptance oracle: for `CCT_Train_CCT2_LP` and `CCT_Train_CCT2_FT2`, training
  exactly the fixture's tensors one SGD step (lr 0.01, cross-entropy mean) reproduces
  its `outputs.npz`, and so does `train-last{layers=1}` for LP.
- The checks have teeth: a gradient rule perturbed in memory (`monkeypatch` on
  `autodiff.rules.RULES`) makes them fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, deeploy_model
from torch_reference import TorchModel, supported_ops
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
)
from xdsl.ir import Block, Operation, Region, SSAValue

from edge_opt.autodiff import rules as gradients
from edge_opt.dialects import nn
from edge_opt.dialects.train import is_optimizer_state
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.context import make_context
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import Session
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.dtypes import to_dense

EXAMPLES = ROOT / "examples"
GRAD_TOL = 1e-4
"""Float32 gradients of the small models against float64 torch, relative to each
reference gradient's max-abs (measured worst: 8e-6, the token model; ~1e-6 for the
conv nets)."""
CCT_GRAD_TOL = 1e-3
"""The same for CCT2 (deeper, 128-wide attention; measured worst: 2.5e-5)."""
STEP_TOL = 1e-4
"""Total parameter change after three weight-decay/momentum/Adam steps, and the
optimizer state, relative to torch's (measured worst: 2e-5)."""


def _f32(value: float) -> float:
    """The value an `f32` attribute holds: what torch must be given."""
    return float(np.float32(value))


# --------------------------------------------------------------------------------------
# Running our side
# --------------------------------------------------------------------------------------


def apply_pipeline(module: ModuleOp, spec: str) -> None:
    for p in expand(parse_pipeline(spec)):
        p.apply(make_context(), module)
        module.verify()


def model_params(module: ModuleOp) -> dict[str, nn.ParamOp]:
    return {
        o.sym_name.data: o
        for o in module.ops
        if isinstance(o, nn.ParamOp) and not is_optimizer_state(o)
    }


def trainable_names(module: ModuleOp) -> set[str]:
    return {name for name, p in model_params(module).items() if p.is_trainable}


def _copy(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}


class Trained:
    """A model before and after `steps` train_steps of `spec`; `original` is the module
    before the pipeline (the torch side evaluates its `@forward`)."""

    def __init__(
        self,
        module: ModuleOp,
        spec: str,
        inputs: Sequence[np.ndarray],
        labels: np.ndarray,
        steps: int = 1,
    ):
        self.original = module.clone()
        apply_pipeline(module, spec)
        self.module = module
        self.trainable = trainable_names(module)
        session = Session(module)
        self.before = _copy(session.params)
        self.losses = []
        for _ in range(steps):
            (loss,) = session.run("train_step", [*inputs, labels])
            self.losses.append(float(loss))
        self.after = _copy(session.params)

    def gradients(self, lr: float) -> dict[str, np.ndarray]:
        lr = _f32(lr)
        return {
            n: (self.before[n].astype(np.float64) - self.after[n]) / lr
            for n in self.trainable
        }

    def assert_frozen_unchanged(self) -> None:
        frozen = set(model_params(self.module)) - self.trainable
        for name in frozen:
            np.testing.assert_array_equal(
                self.after[name], self.before[name], err_msg=f"frozen @{name} changed"
            )


ZERO = 1e-10
"""A reference gradient below this fraction of the model's largest is zero up to
float64 rounding: a bias that a following softmax or normalisation cancels (CCT2's
attention-pool bias, the token model's key bias). Ours is then float32 noise, checked
against the model's largest gradient instead of its own (zero) scale."""


def relative_error(
    ours: np.ndarray, reference: np.ndarray, floor: float = 0.0
) -> float:
    """max |ours - reference| over max(max |reference|, floor)."""
    if not reference.size:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), floor)
    error = float(np.max(np.abs(ours - reference)))
    return error / scale if scale > 0 else error


def assert_close_per_param(
    ours: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    tol: float,
    what: str,
) -> float:
    """Every parameter within `tol` relative to its reference max-abs (or to the largest
    of all, for a reference that is zero, see `ZERO`); returns the worst error."""
    assert set(ours) == set(reference), (
        f"{what}: ours has {sorted(set(ours) ^ set(reference))} that the reference "
        "has not (or the reverse)"
    )
    largest = max(
        (float(np.max(np.abs(r))) for r in reference.values() if r.size), default=0.0
    )
    errors = {}
    for n, r in reference.items():
        zero = float(np.max(np.abs(r), initial=0.0)) <= ZERO * largest
        errors[n] = relative_error(ours[n], r, largest if zero else 0.0)
    bad = {n: e for n, e in errors.items() if not e <= tol}
    assert not bad, (
        f"{what}: {len(bad)} of {len(errors)} parameters off by more than {tol} "
        f"(relative to max-abs): "
        + ", ".join(
            f"{n}: {e:.2e}" for n, e in sorted(bad.items(), key=lambda i: -i[1])
        )
    )
    return max(errors.values(), default=0.0)


def check_sgd_gradients(
    module: ModuleOp,
    inputs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    strategy: str = "",
    pipeline: str = "autodiff",
    loss: str = "cross-entropy",
    reduction: str = "mean",
    expected_trainable: set[str] | None = None,
    tol: float = GRAD_TOL,
) -> float:
    """One plain-SGD train_step vs torch autograd; returns the worst relative error."""
    lr = 1.0
    spec = f"{pipeline}{{loss={loss} reduction={reduction} lr={lr}}}"
    trained = Trained(
        module, f"{strategy},{spec}" if strategy else spec, inputs, labels
    )
    if expected_trainable is not None:
        assert trained.trainable == expected_trainable
    trained.assert_frozen_unchanged()
    torch_model = TorchModel(trained.original, trained.before, trained.trainable)
    reference_loss = torch_model.loss(torch_model(*inputs)[0], labels, loss, reduction)
    np.testing.assert_allclose(
        trained.losses[0], reference_loss.item(), rtol=1e-5, atol=1e-7
    )
    return assert_close_per_param(
        trained.gradients(lr), torch_model.gradients(reference_loss), tol, "gradients"
    )


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def tiny_cnn() -> tuple[ModuleOp, list[np.ndarray], np.ndarray]:
    data = np.load(EXAMPLES / "tiny_cnn_input.npz")
    return load_model(EXAMPLES / "tiny_cnn.mlir"), [data["image"]], data["labels"]


class ModelBuilder:
    """`@forward` from the `nn` builders, with random inline parameters."""

    def __init__(self, seed: int, *input_shapes: Sequence[int]):
        self.rng = np.random.default_rng(seed)
        self.block = Block(arg_types=[TensorType(f32, s) for s in input_shapes])
        for i, arg in enumerate(self.block.args):
            arg.name_hint = f"x{i}"
        self.params: list[nn.ParamOp] = []
        self.inputs = [
            self.rng.standard_normal(s).astype(np.float32) for s in input_shapes
        ]

    @property
    def args(self) -> tuple[SSAValue, ...]:
        return tuple(self.block.args)

    def param(
        self,
        name: str,
        shape: Sequence[int],
        init: str = "weight",
        trainable: bool = True,
    ) -> SSAValue:
        if init == "weight":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            value = self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif init == "scale":
            value = 1.0 + 0.2 * self.rng.standard_normal(shape)
        elif init == "positive":
            value = self.rng.uniform(0.5, 1.5, shape)
        else:
            assert init == "small", init
            value = 0.2 * self.rng.standard_normal(shape)
        type = TensorType(f32, shape)
        self.params.append(
            nn.ParamOp(name, type, trainable, to_dense(value.astype(np.float32), type))
        )
        return self.load(name)

    def load(self, name: str) -> SSAValue:
        param = next(p for p in self.params if p.sym_name.data == name)
        return self(nn.LoadOp(name, param.type))

    def constant(self, value: float, shape: Sequence[int] = ()) -> SSAValue:
        type = TensorType(f32, shape)
        return self(nn.ConstantOp(to_dense(np.full(shape, value, np.float32), type)))

    def __call__(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def module(self, output: SSAValue) -> ModuleOp:
        self.block.add_op(func.ReturnOp(output))
        forward = func.FuncOp(
            "forward",
            ([a.type for a in self.block.args], [output.type]),
            Region(self.block),
            arg_attrs=ArrayAttr(
                [
                    DictionaryAttr({"nn.name": StringAttr(a.name_hint)})
                    for a in self.args
                ]
            ),
        )
        module = ModuleOp([*self.params, forward])
        module.verify()
        return module


def conv_net(seed: int = 0) -> tuple[ModuleOp, list[np.ndarray], np.ndarray]:
    """Batch 3, 3x11x11 images, 5 classes: the input plus a multiple of its floor, ceil
    and round -> conv (asymmetric padding) -> training-mode batch norm -> hardswish ->
    dilated depthwise conv -> group norm -> silu plus elu * hardsigmoid, leaky relu and
    two clips -> three average pools (asymmetric padding with count_include_pad and
    ceil mode, and without; an explicit pad with value 0.25 before the third) ->
    grouped transposed conv (asymmetric padding, output
    padding) -> gelu -> max-pool (asymmetric padding, dilation, ceil mode) -> layer
    norm over C, H, W -> global average pool -> linear."""
    b = ModelBuilder(seed, (3, 3, 11, 11))
    (x,) = b.args
    # Rounding of the input (no parameter before it, so nothing trains through it).
    x2 = b(nn.MulOp(x, b.constant(2.0)))
    steps = b(nn.AddOp(b(nn.AddOp(b(nn.FloorOp(x2)), b(nn.CeilOp(x2)))), b(nn.RoundOp(x2))))
    x = b(nn.AddOp(x, b(nn.MulOp(steps, b.constant(0.05)))))
    c1 = b(nn.Conv2dOp(x, b.param("conv1_weight", (8, 3, 3, 3)), padding=(1, 0, 2, 1)))
    bn = b(
        nn.BatchNormOp(
            c1,
            b.param("bn_scale", (8,), "scale"),
            b.param("bn_bias", (8,), "small"),
            b.param("bn_mean", (8,), "small", trainable=False),
            b.param("bn_var", (8,), "positive", trainable=False),
            training=True,
        )
    )
    a1 = b(nn.HardswishOp(bn))
    dw = b(
        nn.Conv2dOp(
            a1,
            b.param("dw_weight", (8, 1, 3, 3)),
            b.param("dw_bias", (8,), "small"),
            stride=(2, 2),
            padding=(1, 1, 1, 1),
            dilation=(2, 1),
            groups=8,
        )
    )
    gn = b(
        nn.GroupNormOp(
            dw, b.param("gn_scale", (8,), "scale"), b.param("gn_bias", (8,), "small"), 2
        )
    )
    # The parametrised activations (both clip bounds, and the upper one alone).
    act = b(nn.MulOp(b(nn.EluOp(gn, 0.7)), b(nn.HardsigmoidOp(gn, 0.2, 0.5))))
    act = b(nn.AddOp(act, b(nn.LeakyReluOp(gn, 0.1))))
    act = b(nn.AddOp(act, b(nn.ClipOp(gn, -0.5, 1.0))))
    act = b(nn.AddOp(act, b(nn.ClipOp(gn, None, 0.8))))
    a2 = b(nn.AddOp(b(nn.SiluOp(gn)), b(nn.MulOp(act, b.constant(0.25)))))
    pool_a = b(
        nn.AvgPool2dOp(
            a2,
            (3, 3),
            (2, 2),
            padding=(1, 1, 0, 1),
            ceil_mode=True,
            count_include_pad=True,
        )
    )
    pool_b = b(nn.AvgPool2dOp(a2, (2, 2), (2, 2), padding=(0, 1, 1, 0)))
    padded = b(nn.PadOp(a2, (0, 0, 1, 1, 0, 0, 1, 1), 0.25))
    pool_c = b(nn.AvgPool2dOp(padded, (3, 3), (2, 2)))
    pooled = b(nn.AddOp(b(nn.AddOp(pool_a, pool_b)), pool_c))
    ct = b(
        nn.ConvTranspose2dOp(
            pooled,
            b.param("ct_weight", (8, 2, 3, 3)),
            b.param("ct_bias", (4,), "small"),
            stride=(2, 2),
            padding=(1, 0, 0, 1),
            output_padding=(1, 0),
            groups=2,
        )
    )
    a3 = b(nn.GeluOp(ct))
    mp = b(
        nn.MaxPool2dOp(
            a3, (2, 2), (2, 2), padding=(0, 1, 1, 0), dilation=(1, 2), ceil_mode=True
        )
    )
    _, c, h, w = mp.type.get_shape()
    ln = b(
        nn.LayerNormOp(
            mp,
            b.param("ln_scale", (c, h, w), "scale"),
            b.param("ln_bias", (c, h, w), "small"),
            axis=1,
        )
    )
    gap = b(nn.GlobalAvgPoolOp(ln))
    flat = b(nn.ReshapeOp(gap, (3, c)))
    logits = b(
        nn.LinearOp(
            flat, b.param("fc_weight", (5, c)), b.param("fc_bias", (5,), "small")
        )
    )
    labels = b.rng.integers(0, 5, 3).astype(np.int32)
    return b.module(logits), b.inputs, labels


def token_net(seed: int = 0) -> tuple[ModuleOp, list[np.ndarray], np.ndarray]:
    """Batch 3 of 6 tokens of width 8, 4 classes: single-head attention written with
    both matmul transpose flags, layer norm, an MLP with tanh-gelu, then a head that
    uses every remaining element-wise, slicing, gathering, broadcasting and reduction
    op; `wq` is loaded twice (its gradient sums two uses)."""
    b = ModelBuilder(seed, (3, 6, 8))
    (x,) = b.args
    q = b(nn.LinearOp(x, b.param("wq", (8, 8))))
    k = b(nn.LinearOp(x, b.param("wk", (8, 8)), b.param("bk", (8,), "small")))
    v = b(nn.LinearOp(x, b.param("wv", (8, 8))))
    scores = b(nn.DivOp(b(nn.MatmulOp(q, k, transpose_rhs=True)), b.constant(8**0.5)))
    attn = b(nn.SoftmaxOp(scores, -1))
    o1 = b(nn.MatmulOp(attn, v))  # (3, 6, 8)
    o2 = b(nn.TransposeOp(b(nn.MatmulOp(v, attn, transpose_lhs=True)), (0, 2, 1)))
    h = b(nn.AddOp(b(nn.AddOp(o1, o2)), x))
    ln = b(
        nn.LayerNormOp(
            h, b.param("ln_scale", (8,), "scale"), b.param("ln_bias", (8,), "small")
        )
    )
    m1 = b(
        nn.GeluOp(
            b(nn.LinearOp(ln, b.param("w1", (16, 8)), b.param("b1", (16,), "small"))),
            "tanh",
        )
    )
    m2 = b(nn.LinearOp(m1, b.param("w2", (8, 16))))
    h2 = b(nn.AddOp(ln, m2))  # (3, 6, 8)
    # Element-wise zoo, each on a well-conditioned domain.
    gate = b(nn.MulOp(b(nn.SigmoidOp(h2)), b(nn.TanhOp(h2))))
    e = b(nn.ErfOp(b(nn.MulOp(h2, b.constant(0.5)))))
    softplus = b(nn.LogOp(b(nn.AddOp(b(nn.ExpOp(b(nn.NegOp(h2)))), b.constant(1.0)))))
    norm = b(nn.SqrtOp(b(nn.AddOp(b(nn.MulOp(h2, h2)), b.constant(1.0)))))  # >= 1
    power = b(nn.PowOp(norm, b.param("exponent", (8,), "positive")))
    mixed = b(nn.SubOp(b(nn.AddOp(gate, e)), b(nn.DivOp(softplus, power))))
    # Slices (a positive and a negative step), concat, squeeze/unsqueeze.
    even = b(nn.SliceOp(mixed, (0, 0, 0), (3, 6, 8), (1, 2, 1)))  # (3, 3, 8)
    back = b(nn.SliceOp(mixed, (2, 5, 7), (-1, -1, -1), (-1, -2, -3)))  # (3, 3, 3)
    cat = b(nn.ConcatOp([even, back], 2))  # (3, 3, 11)
    cat4 = b(nn.UnsqueezeOp(cat, (1,)))  # (3, 1, 3, 11)
    silu = b(nn.SqueezeOp(b(nn.SiluOp(cat4)), (1,)))
    pooled = b(nn.ReduceMeanOp(silu, (1,)))  # (3, 11)
    summed = b(nn.ReduceSumOp(silu, (-1,), keepdims=True))  # (3, 3, 1)
    # A gather that picks one feature twice (its gradient sums both).
    picked = b(nn.ReduceMeanOp(b(nn.GatherOp(mixed, (7, 0, 7), -1)), (1,)))  # (3, 3)
    features = b(
        nn.ConcatOp(
            [
                pooled, b(nn.ReshapeOp(summed, (3, 3))), b(nn.ReduceMeanOp(h2, (1,))),
                picked,
            ],
            1,
        )
    )  # (3, 25)
    shift = b(nn.BroadcastToOp(b.param("shift", (1, 25), "small"), (3, 25)))
    features = b(nn.HardswishOp(b(nn.AddOp(features, shift))))
    hidden = b(nn.LinearOp(features, b.param("wh", (8, 25))))
    hidden = b(nn.ReluOp(b(nn.LinearOp(hidden, b.load("wq")))))  # wq again
    logits = b(nn.LogSoftmaxOp(b(nn.LinearOp(hidden, b.param("head", (4, 8)))), 1))
    labels = b.rng.integers(0, 4, 3).astype(np.int32)
    return b.module(logits), b.inputs, labels


def attention_net(seed: int = 0) -> tuple[ModuleOp, list[np.ndarray], np.ndarray]:
    """Batch 3 of 5 tokens of width 8, 4 classes: two `nn.attention` blocks with
    residuals (2 heads with dk 4 / dv 3 and the four biases; then 4 heads of size 2
    without biases, scale 1/sqrt(2)), a layer norm between, mean over tokens, linear."""
    b = ModelBuilder(seed, (3, 5, 8))
    (x,) = b.args
    a1 = b(
        nn.AttentionOp(
            x, b.param("a1_wq", (8, 8)), b.param("a1_wk", (8, 8)),
            b.param("a1_wv", (8, 6)), b.param("a1_wo", (6, 8)),
            [b.param(f"a1_b{n}", (s,), "small") for n, s in zip("qkvo", (8, 8, 6, 8))],
            heads=2, scale=0.5,
        )
    )
    h = b(nn.AddOp(x, a1))
    ln = b(
        nn.LayerNormOp(
            h, b.param("ln_scale", (8,), "scale"), b.param("ln_bias", (8,), "small")
        )
    )
    a2 = b(
        nn.AttentionOp(
            ln, b.param("a2_wq", (8, 8)), b.param("a2_wk", (8, 8)),
            b.param("a2_wv", (8, 8)), b.param("a2_wo", (8, 8)), heads=4,
            scale=2**-0.5,
        )
    )
    pooled = b(nn.ReduceMeanOp(b(nn.AddOp(ln, a2)), (1,)))
    logits = b(nn.LinearOp(pooled, b.param("head", (4, 8)), b.param("head_b", (4,))))
    labels = b.rng.integers(0, 4, 3).astype(np.int32)
    return b.module(logits), b.inputs, labels


def cct2(name: str = "CCT_Train_CCT2_FT2") -> tuple[ModuleOp, Path]:
    folder = deeploy_model(name)
    return import_onnx(folder / "network_infer.onnx"), folder


def cct2_inputs(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    data = np.load(folder / "inputs.npz")
    return [data["input"]], data["labels"].astype(np.int32)


# --------------------------------------------------------------------------------------
# The evaluator and the models cover every nn op
# --------------------------------------------------------------------------------------


def test_oracle_models_exercise_every_nn_op():
    from edge_opt.dialects.nn import NN

    used: set[type[Operation]] = set()
    for build in (tiny_cnn, conv_net, token_net, attention_net):
        used |= {type(o) for o in build()[0].walk()}
    every = set(NN.operations) - {nn.ParamOp}
    assert every <= supported_ops(), sorted(o.name for o in every - supported_ops())
    assert every <= used, sorted(o.name for o in every - used)
    gelu_forms = {
        o.approximate.data
        for m in (conv_net()[0], token_net()[0])
        for o in m.walk()
        if isinstance(o, nn.GeluOp)
    }
    assert gelu_forms == {"none", "tanh"}


@pytest.mark.parametrize("build", [tiny_cnn, conv_net, token_net, attention_net])
def test_torch_forward_matches_interpreter(build):
    """The two evaluators agree on @forward before anything is differentiated."""
    module, inputs, _ = build()
    (ours,) = Session(module).run("forward", inputs)
    (reference,) = TorchModel(module)(*inputs)
    np.testing.assert_allclose(ours, reference.detach().numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# tiny_cnn: every loss, every optimizer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_tiny_cnn_cross_entropy_sgd(reduction):
    module, inputs, labels = tiny_cnn()
    check_sgd_gradients(
        module, inputs, labels, pipeline="train-full", reduction=reduction
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_tiny_cnn_mse_sgd(reduction):
    module, inputs, _ = tiny_cnn()
    target = np.random.default_rng(3).standard_normal((4, 10)).astype(np.float32)
    check_sgd_gradients(
        module, inputs, target, pipeline="train-full", loss="mse", reduction=reduction
    )


def _torch_steps(
    model: TorchModel,
    inputs,
    labels,
    optimizer: torch.optim.Optimizer,
    steps: int,
    loss: str = "cross-entropy",
    reduction: str = "mean",
) -> list[float]:
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = model.loss(model(*inputs)[0], labels, loss, reduction)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses


def _check_optimizer_run(
    trained: Trained,
    model: TorchModel,
    torch_losses: list[float],
    state: Mapping[str, Callable[[dict], torch.Tensor]],
    optimizer: torch.optim.Optimizer,
) -> None:
    np.testing.assert_allclose(trained.losses, torch_losses, rtol=1e-5)
    torch_after = model.values()
    assert_close_per_param(
        {
            n: trained.after[n].astype(np.float64) - trained.before[n]
            for n in trained.trainable
        },
        {n: torch_after[n] - trained.before[n] for n in trained.trainable},
        STEP_TOL,
        "parameter change",
    )
    # The optimizer state parameters hold what torch.optim keeps.
    params = model.trainable_params()
    ours_state, torch_state = {}, {}
    for name in trained.trainable:
        for kind, read in state.items():
            ours_state[f"{name}_{kind}"] = trained.after[f"{name}_{kind}"]
            torch_state[f"{name}_{kind}"] = read(optimizer.state[params[name]]).numpy()
    assert_close_per_param(ours_state, torch_state, STEP_TOL, "optimizer state")


@pytest.mark.parametrize(
    "momentum, nesterov, decay",
    [(0.0, False, 0.01), (0.9, False, 0.0), (0.9, True, 0.01)],
    ids=["weight decay", "momentum", "nesterov + weight decay"],
)
def test_tiny_cnn_sgd_three_steps(momentum, nesterov, decay):
    module, inputs, labels = tiny_cnn()
    lr, steps = 0.05, 3
    trained = Trained(
        module,
        f"train-full{{lr={lr} momentum={momentum} nesterov={str(nesterov).lower()} "
        f"weight_decay={decay}}}",
        inputs,
        labels,
        steps,
    )
    has_buffers = any(
        p.sym_name.data == "fc_weight_momentum"
        for p in trained.module.ops
        if isinstance(p, nn.ParamOp)
    )
    assert has_buffers == bool(momentum)
    model = TorchModel(trained.original, trained.before, trained.trainable)
    optimizer = torch.optim.SGD(
        model.trainable_params().values(),
        lr=_f32(lr),
        momentum=_f32(momentum),
        nesterov=nesterov,
        weight_decay=_f32(decay),
    )
    losses = _torch_steps(model, inputs, labels, optimizer, steps)
    state = {"momentum": lambda s: s["momentum_buffer"]} if momentum else {}
    _check_optimizer_run(trained, model, losses, state, optimizer)


def test_tiny_cnn_adam_three_steps():
    module, inputs, labels = tiny_cnn()
    lr, beta1, beta2, epsilon, decay, steps = 0.01, 0.8, 0.99, 0.000001, 0.01, 3
    trained = Trained(
        module,
        f"train-full{{optimizer=adam lr={lr} beta1={beta1} beta2={beta2} "
        f"epsilon={epsilon:f} weight_decay={decay}}}",
        inputs,
        labels,
        steps,
    )
    assert float(trained.after["adam_step"]) == steps
    model = TorchModel(trained.original, trained.before, trained.trainable)
    optimizer = torch.optim.Adam(
        model.trainable_params().values(),
        lr=_f32(lr),
        betas=(_f32(beta1), _f32(beta2)),
        eps=_f32(epsilon),
        weight_decay=_f32(decay),
    )
    losses = _torch_steps(model, inputs, labels, optimizer, steps)
    _check_optimizer_run(
        trained,
        model,
        losses,
        {"exp_avg": lambda s: s["exp_avg"], "exp_avg_sq": lambda s: s["exp_avg_sq"]},
        optimizer,
    )


# --------------------------------------------------------------------------------------
# Frozen / trainable mixes
# --------------------------------------------------------------------------------------

TINY_CNN_MIXES = {
    # conv1 and bn1 frozen: no gradient flows into the prefix.
    "frozen prefix": "conv2_.*|fc_.*",
    # conv2 frozen between trained layers: the input gradient passes through it.
    "frozen middle": "conv1_.*|bn1_scale|fc_weight",
    # Only one layer deep inside, nothing after it trains.
    "only the middle": "conv2_weight",
    # A trained batch norm right after a frozen conv: no gradient into the conv.
    "batch norm after a frozen conv": "bn1_scale|bn1_bias|fc_bias",
    # The inference batch norm's running statistics too (a gradient torch's batch_norm
    # refuses; the reference writes the formula out).
    "everything": ".*",
}


@pytest.mark.parametrize("pattern", TINY_CNN_MIXES.values(), ids=TINY_CNN_MIXES.keys())
def test_tiny_cnn_frozen_mixes(pattern):
    module, inputs, labels = tiny_cnn()
    expected = {n for n in model_params(module) if re.fullmatch(pattern, n)}
    check_sgd_gradients(
        module,
        inputs,
        labels,
        strategy=f'freeze{{trainable="{pattern}"}}',
        expected_trainable=expected,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_conv_net_sgd(reduction):
    module, inputs, labels = conv_net()
    check_sgd_gradients(
        module, inputs, labels, pipeline="train-full", reduction=reduction
    )


def test_conv_net_frozen_prefix_and_middle():
    module, inputs, labels = conv_net()
    pattern = "bn_.*|gn_.*|ct_weight|fc_.*"
    expected = {n for n in model_params(module) if re.fullmatch(pattern, n)}
    check_sgd_gradients(
        module,
        inputs,
        labels,
        strategy=f'freeze{{trainable="{pattern}"}}',
        expected_trainable=expected,
    )


def test_conv_net_mse():
    module, inputs, _ = conv_net()
    target = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    check_sgd_gradients(module, inputs, target, pipeline="train-full", loss="mse")


@pytest.mark.parametrize(
    "strategy",
    ["", 'freeze{frozen="wk|bk|ln_.*|exponent"}', 'freeze{trainable="wq|head"}'],
    ids=["all", "frozen middle", "shared weight and head"],
)
def test_token_net_sgd(strategy):
    module, inputs, labels = token_net()
    check_sgd_gradients(module, inputs, labels, strategy=strategy)


@pytest.mark.parametrize(
    "strategy",
    ["", 'freeze{trainable="a1_w.*|head.*"}', 'freeze{trainable="a1_wo|a1_bo|a2_wv|head"}',
     'freeze{frozen="a1_.*"}'],
    ids=["all", "first block's weights", "output and value only", "first block frozen"],
)
def test_attention_net_sgd(strategy):
    """The `nn.attention` gradient rule (recomputing q, k, v and the probabilities)
    against torch autograd through `F.scaled_dot_product_attention`, for each kind of
    operand that trains: x (through the second block), every weight and bias, and
    subsets that leave parts of the backward out."""
    module, inputs, labels = attention_net()
    check_sgd_gradients(module, inputs, labels, strategy=strategy)


# --------------------------------------------------------------------------------------
# CCT2 (Deeploy's ONNX): every parameter's gradient
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cct2_train_full_gradients():
    module, folder = cct2()
    assert all(p.is_trainable for p in model_params(module).values())
    inputs, labels = cct2_inputs(folder)
    check_sgd_gradients(module, inputs, labels, pipeline="train-full", tol=CCT_GRAD_TOL)


# --------------------------------------------------------------------------------------
# The acceptance oracle: Deeploy's one-step SGD fixtures
# --------------------------------------------------------------------------------------

FIXTURE_LR = 0.01
FIXTURE_UPDATE_TOL = 1e-2
"""(after - before) against the fixture's, relative to its max-abs. Both sides are
differences of float32 weights, exact to about one ulp of the weight: for the attention
q/k projections of FT2 (updates ~3e-6 on weights ~0.1) that is ~3e-3 of the update
(measured worst 7e-4); for every other tensor below 1e-4."""


def fixture_targets(folder: Path, module: ModuleOp) -> dict[str, np.ndarray]:
    """`outputs.npz` by parameter name: the keys minus `_updated`, checked to name
    imported parameters of the same shape."""
    outputs = np.load(folder / "outputs.npz")
    params = model_params(module)
    targets = {}
    for key in outputs.files:
        assert key.endswith("_updated"), key
        name = key.removesuffix("_updated")
        assert name in params, f"{key} names no imported parameter"
        assert tuple(params[name].type.get_shape()) == outputs[key].shape, key
        targets[name] = outputs[key]
    return targets


def check_fixture_values(trained: Trained, targets: Mapping[str, np.ndarray]) -> None:
    """Exactly the fixture's tensors trained, each equal to the fixture's, the rest
    unchanged."""
    assert trained.trainable == set(targets)
    trained.assert_frozen_unchanged()
    for name, target in targets.items():
        np.testing.assert_allclose(
            trained.after[name], target, rtol=1e-4, atol=1e-6, err_msg=f"@{name}"
        )


def check_fixture_update(trained: Trained, targets: Mapping[str, np.ndarray]) -> float:
    """The values alone barely move in one step (a no-op update is within rtol of most
    of them): the update itself must match the fixture's too."""
    return assert_close_per_param(
        {n: trained.after[n].astype(np.float64) - trained.before[n] for n in targets},
        {n: targets[n].astype(np.float64) - trained.before[n] for n in targets},
        FIXTURE_UPDATE_TOL,
        "update vs the fixture's",
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CCT_Train_CCT2_LP", "CCT_Train_CCT2_FT2"])
def test_deeploy_training_fixture(name):
    module, folder = cct2(name)
    targets = fixture_targets(folder, module)
    inputs, labels = cct2_inputs(folder)
    trainable = "|".join(sorted(targets))
    trained = Trained(
        module,
        f'freeze{{trainable="{trainable}"}},autodiff{{lr={FIXTURE_LR}}}',
        inputs,
        labels,
    )
    check_fixture_values(trained, targets)
    check_fixture_update(trained, targets)


@pytest.mark.slow
def test_train_last_layer_is_the_linear_probe_fixture():
    module, folder = cct2("CCT_Train_CCT2_LP")
    targets = fixture_targets(folder, module)
    inputs, labels = cct2_inputs(folder)
    trained = Trained(module, f"train-last{{layers=1 lr={FIXTURE_LR}}}", inputs, labels)
    count = sum(int(np.prod(trained.before[n].shape)) for n in trained.trainable)
    assert count == 1290
    check_fixture_values(trained, targets)
    check_fixture_update(trained, targets)


# --------------------------------------------------------------------------------------
# The checks can fail
# --------------------------------------------------------------------------------------


def _perturbed(op_type: type[Operation], factor: float):
    """`op_type`'s gradient rule with every gradient it returns scaled by `factor`."""
    rule = gradients.RULES[op_type]

    def wrong(b, op, dy, needs):
        return [
            None if g is None else b.scale(g, factor) for g in rule(b, op, dy, needs)
        ]

    return wrong


@pytest.mark.parametrize(
    "op_type, build",
    [
        (nn.BatchNormOp, tiny_cnn),
        (nn.Conv2dOp, tiny_cnn),
        (nn.GroupNormOp, conv_net),
        (nn.ConvTranspose2dOp, conv_net),
        (nn.SoftmaxOp, token_net),
        (nn.SliceOp, token_net),
        (nn.GatherOp, token_net),
        (nn.AttentionOp, attention_net),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_a_wrong_rule_fails_the_gradient_check(monkeypatch, op_type, build):
    monkeypatch.setitem(gradients.RULES, op_type, _perturbed(op_type, 1.01))
    module, inputs, labels = build()
    with pytest.raises(AssertionError, match="gradients"):
        check_sgd_gradients(module, inputs, labels)


@pytest.mark.slow
def test_a_wrong_rule_fails_the_fixture_check(monkeypatch):
    monkeypatch.setitem(gradients.RULES, nn.GeluOp, _perturbed(nn.GeluOp, 1.05))
    module, folder = cct2()
    targets = fixture_targets(folder, module)
    inputs, labels = cct2_inputs(folder)
    trainable = "|".join(sorted(targets))
    trained = Trained(
        module,
        f'freeze{{trainable="{trainable}"}},autodiff{{lr={FIXTURE_LR}}}',
        inputs,
        labels,
    )
    with pytest.raises(AssertionError, match="update vs the fixture's"):
        check_fixture_update(trained, targets)
