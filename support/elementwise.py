"""The element-wise ops, declared once: one row per op.

A `Unary` row says everything edge-opt knows about one element-wise op (an activation,
a rounding, ...), and every layer builds its part from the row instead of repeating it:

| from the row            | what is built                                  | where                                   |
|-------------------------|------------------------------------------------|-----------------------------------------|
| `name`, `doc`, `attributes` | `nn.NAME` (`nn.NameOp`)                    | `edge_opt.dialects.elementwise`         |
| `derivative`, `saved`, `grad_doc` | `train.NAME_grad` (`train.NameGradOp`) | `edge_opt.dialects.elementwise`       |
|                         | `kernel.NAME`, `kernel.NAME_grad`              | `edge_opt.dialects.kernel`              |
| `forward`, `derivative` | interpreter semantics                          | `edge_opt.ir.interpreters`              |
| `flops`, `grad_flops`   | the cost model                                 | `edge_opt.ir.cost`                      |
| `saved`, `gradient`     | the gradient rule of `autodiff`                | `edge_opt.autodiff.rules.elementwise` |
| `name`, `attributes`    | calls of `edge_NAME_f32` / `edge_NAME_grad_f32` | `edge_opt.backends.c.kernels.elementwise` |
| `onnx`, `onnx_defaults` | the ONNX lowering                              | `edge_opt.frontends.onnx.lowerings.elementwise` |
| `domain`, `Scalar.samples`, `Choice` | the random-model generator        | `edge_opt.testing.generators`           |

The NumPy functions are the executable specification: the interpreter runs them and the
C kernels are checked against them. They compute in the dtype of their inputs and follow
`torch.nn.functional` (the test oracle) where PyTorch and ONNX differ. `forward(x,
**attributes)` and `derivative(dy, saved, **attributes of the gradient op)`; `saved` is
the forward value the gradient reads, the op's input `x` or its output `y` (a relu's
backward needs only its output, so the input need not stay alive).

The C kernels themselves (`backends/c/runtime/edge_kernels_elementwise.{c,h}`) are
written by hand: `edge_NAME_f32(n, scalars..., x, y)` and `edge_NAME_grad_f32(n,
scalars of the gradient op..., dy, saved, dx)`; a `Choice` other than its default picks
`edge_NAME_VALUE_f32` (`edge_gelu_tanh_f32`). `Binary` rows are the arithmetic ops with
NumPy broadcasting, whose gradients are written as other `nn` ops.

This module names upper layers only as strings (ONNX op names, C kernel names): it is
the foundation they all read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge_opt.support.numerics import erf, sigmoid


@dataclass(frozen=True)
class Scalar:
    """An f32 parameter of an op: a property of its `nn`, `kernel` (and, with `grad`,
    `train` gradient) ops, passed to its numerics by name and to its C kernel in
    order."""

    name: str
    default: float | None = None
    """The value an op without the property has (it is then not printed). None: the
    property is optional and an op without it behaves as with `absent`."""
    absent: float = math.nan
    grad: bool = True
    """Whether the gradient op carries it too (there it has no default: the rule
    always copies the forward op's value)."""
    samples: tuple[float, ...] = ()
    """Values the random-model generator draws."""


@dataclass(frozen=True)
class Choice:
    """A string property with a fixed set of values, the first the default: a value
    other than the default selects the C kernel `edge_NAME_VALUE_f32`."""

    name: str
    values: tuple[str, ...]

    @property
    def default(self) -> str:
        return self.values[0]


Attribute = Scalar | Choice


@dataclass(frozen=True)
class Unary:
    """One element-wise op `y = forward(x)` (see the module docstring)."""

    name: str
    doc: str
    forward: Callable[..., np.ndarray]
    derivative: Callable[..., np.ndarray] | None = None
    """`dx` from `dy` and the saved value; None for the ops without a `train` gradient
    op (see `gradient`)."""
    saved: Literal["input", "output"] = "input"
    grad_doc: str = ""
    gradient: Literal["op", "composite", "none"] = "op"
    """How `autodiff` differentiates it: with the gradient op `train.NAME_grad`; with
    other `nn` ops (a rule in `edge_opt.autodiff.rules.elementwise`); or not at all
    (piecewise constant: `autodiff` refuses to train through it)."""
    attributes: tuple[Attribute, ...] = ()
    flops: int = 1
    grad_flops: int = 2
    onnx: str | None = None
    """The ONNX op (default domain) it imports from, its attributes named as ours."""
    onnx_defaults: Mapping[str, float] = field(default_factory=dict)
    """ONNX's defaults where they differ from ours."""
    domain: Literal["any", "bounded", "positive"] = "any"
    """The inputs it is defined and well-conditioned on: any value, |x| <= 3 (exp), or
    positive values (sqrt, log)."""

    @property
    def grad_attributes(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if isinstance(a, Choice) or a.grad)

    def c_name(self, values: Mapping[str, object]) -> str:
        """The C kernel's name part for an op with these attribute values."""
        suffix = "".join(
            f"_{values[a.name]}" for a in self.attributes
            if isinstance(a, Choice) and values[a.name] != a.default
        )
        return self.name + suffix


@dataclass(frozen=True)
class Binary:
    """`result = forward(lhs, rhs)` with NumPy broadcasting (C: `edge_NAME_f32`)."""

    name: str
    doc: str
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    onnx: str
    flops: int = 1
    commutative: bool = False
    """`f(a, b) == f(b, a)`: the op gets xDSL's `Commutative` trait (rules match its
    operands in either order)."""


# --------------------------------------------------------------------------------------
# Numerics of the parametrised and the less obvious ops
# --------------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        c = np.asarray(_SQRT_2_OVER_PI, dtype=x.dtype)
        return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / np.asarray(math.sqrt(2.0), dtype=x.dtype)))


def gelu_grad(dy: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        kappa = 0.044715
        inner = np.tanh(_SQRT_2_OVER_PI * (x + kappa * x * x * x))
        left_derivative = 0.5 * (1 + inner)
        right_derivative = (1 - inner * inner) * _SQRT_2_OVER_PI * (1 + 3 * kappa * x * x)
        return dy * (left_derivative + 0.5 * x * right_derivative)
    cdf = 0.5 * (1 + erf(x / np.asarray(math.sqrt(2), x.dtype)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dy * (cdf + x * pdf)


def silu_grad(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def hardswish_grad(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    # At the kinks -3 and 3 PyTorch takes the outer pieces' slopes, 0 and 1.
    return np.where(x <= -3, 0, np.where(x < 3, dy * (x / 3 + 0.5), dy))


def clip(x: np.ndarray, min: float, max: float) -> np.ndarray:
    """Absent bounds are -inf / +inf; NaN stays NaN."""
    return np.minimum(np.maximum(x, min), max)


def elu(x: np.ndarray, alpha: float) -> np.ndarray:
    # expm1 of the non-positive part only: accurate near 0, no overflow for large x.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------

_ALPHA_SAMPLES = (1.0, 0.5, 2.0)

UNARY: tuple[Unary, ...] = (
    Unary(
        "relu", "`max(x, 0)`.",
        lambda x: np.maximum(x, 0),
        lambda dy, y: np.where(y > 0, dy, 0), saved="output",
        grad_doc="`dy * (y > 0)`, saved = the relu's output `y`.",
        onnx="Relu",
    ),
    Unary(
        "sigmoid", "`1 / (1 + exp(-x))`.",
        sigmoid,
        lambda dy, y: dy * y * (1 - y), saved="output",
        grad_doc="`dy * y * (1 - y)`, saved = the sigmoid's output `y`.",
        onnx="Sigmoid",
    ),
    Unary(
        "tanh", "`tanh(x)`.",
        np.tanh,
        lambda dy, y: dy * (1 - y * y), saved="output",
        grad_doc="`dy * (1 - y**2)`, saved = the tanh's output `y`.",
        onnx="Tanh",
    ),
    Unary(
        "silu", "`x * sigmoid(x)`.",
        lambda x: x * sigmoid(x),
        silu_grad,
        grad_doc="`dy * s * (1 + x * (1 - s))` with `s = sigmoid(x)`, saved = the input "
        "`x`.",
    ),
    Unary(
        "hardswish", "`x * relu6(x + 3) / 6`.",
        lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
        hardswish_grad,
        grad_doc="`dy * (0 if x <= -3, 1 if x >= 3, (2x + 3) / 6 otherwise)`, saved = "
        "the input `x` (PyTorch's convention at the kinks).",
        onnx="HardSwish",
    ),
    Unary(
        "erf", "The error function.",
        erf,
        lambda dy, x: dy * (2 / math.sqrt(math.pi)) * np.exp(-x * x),
        grad_doc="`dy * 2 / sqrt(pi) * exp(-x**2)`, saved = the input `x`.",
        onnx="Erf",
    ),
    Unary("sqrt", "`sqrt(x)`.", np.sqrt, gradient="composite", onnx="Sqrt",
          domain="positive"),
    Unary("exp", "`exp(x)`.", np.exp, gradient="composite", onnx="Exp", domain="bounded"),
    Unary("log", "Natural logarithm.", np.log, gradient="composite", onnx="Log",
          domain="positive"),
    Unary("neg", "`-x`.", np.negative, gradient="composite", onnx="Neg"),
    Unary(
        "gelu",
        "GELU: `x * Phi(x)` with the exact erf form (`approximate = \"none\"`, default) "
        "or the tanh approximation (`approximate = \"tanh\"`), as "
        "`torch.nn.functional.gelu`.",
        gelu, gelu_grad,
        grad_doc="Derivative of `nn.gelu` (same `approximate`) times `dy`, saved = the "
        "input `x`.",
        attributes=(Choice("approximate", ("none", "tanh")),),
        onnx="Gelu",
    ),
    Unary(
        "ceil",
        "The smallest integer >= x. Piecewise constant: it has no gradient, so "
        "`autodiff` refuses to train a parameter through it (frozen parts may use it).",
        np.ceil, gradient="none", onnx="Ceil",
    ),
    Unary("floor", "The largest integer <= x (no gradient, like `nn.ceil`).", np.floor,
          gradient="none", onnx="Floor"),
    Unary(
        "round",
        "The nearest integer, halves to even (`torch.round`, ONNX `Round`; no "
        "gradient, like `nn.ceil`).",
        np.round, gradient="none", onnx="Round",
    ),
    Unary(
        "clip",
        "`min(max(x, min), max)` (ONNX `Clip`; ReLU6 is `min = 0, max = 6`); an absent "
        "bound does not clip, NaN stays NaN. The gradient is PyTorch's for `F.hardtanh` "
        "and `F.relu6`: `dy` strictly between the bounds, 0 at and beyond them.",
        clip,
        lambda dy, y, min, max: np.where((y > min) & (y < max), dy, 0), saved="output",
        grad_doc="`dy` where `min < y < max`, else 0 (an absent bound is -inf / +inf), "
        "saved = the clip's output `y`: PyTorch's `F.hardtanh` / `F.relu6` gradient.",
        attributes=(
            Scalar("min", absent=-math.inf, samples=(-1.0, -0.5, 0.0)),
            Scalar("max", absent=math.inf, samples=(0.5, 1.0, 6.0)),
        ),
        onnx="Clip",
    ),
    Unary(
        "hardsigmoid",
        "`max(0, min(1, alpha * x + beta))`; the defaults are PyTorch's "
        "(`F.hardsigmoid`: 1/6 and 1/2; ONNX `HardSigmoid` defaults to alpha 0.2).",
        lambda x, alpha, beta: np.clip(alpha * x + beta, 0.0, 1.0),
        lambda dy, y, alpha: np.where((y > 0) & (y < 1), dy * alpha, 0), saved="output",
        grad_doc="`alpha * dy` where `0 < y < 1`, else 0, saved = the hardsigmoid's "
        "output `y` (PyTorch's convention at the kinks).",
        attributes=(
            Scalar("alpha", 1 / 6, samples=(1 / 6, 0.2, 0.5)),
            Scalar("beta", 0.5, grad=False, samples=(0.5, 0.3)),
        ),
        onnx="HardSigmoid", onnx_defaults={"alpha": 0.2},
    ),
    Unary(
        "elu", "`x` if `x > 0`, else `alpha * (exp(x) - 1)` (`F.elu`).",
        elu,
        lambda dy, x, alpha: np.where(x > 0, dy, dy * alpha * np.exp(np.minimum(x, 0))),
        grad_doc="`dy` where `x > 0`, else `alpha * exp(x) * dy`, saved = the input `x`.",
        attributes=(Scalar("alpha", 1.0, samples=_ALPHA_SAMPLES),),
        onnx="Elu",
    ),
    Unary(
        "leaky_relu",
        "`x` if `x >= 0`, else `alpha * x` (`F.leaky_relu`; its gradient is `dy` for "
        "`x > 0`, `alpha * dy` otherwise, as PyTorch's).",
        lambda x, alpha: np.where(x > 0, x, x * alpha),
        lambda dy, x, alpha: np.where(x > 0, dy, dy * alpha),
        grad_doc="`dy` where `x > 0`, else `alpha * dy`, saved = the input `x`.",
        # A negative slope too: a pass that assumes leaky relu never decreases (as
        # pool-before-activation must not) is then caught (bench/mutation.py).
        attributes=(Scalar("alpha", 0.01, samples=(0.01, 0.1, 0.3, -0.2)),),
        onnx="LeakyRelu",
    ),
)

BINARY: tuple[Binary, ...] = (
    Binary("add", "`lhs + rhs`.", np.add, "Add", commutative=True),
    Binary("sub", "`lhs - rhs`.", np.subtract, "Sub"),
    Binary("mul", "`lhs * rhs`.", np.multiply, "Mul", commutative=True),
    Binary("div", "`lhs / rhs`.", np.divide, "Div"),
    Binary("pow", "`lhs ** rhs`.", np.power, "Pow"),
)

UNARY_BY_NAME: dict[str, Unary] = {row.name: row for row in UNARY}
