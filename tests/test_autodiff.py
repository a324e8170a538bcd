"""The `autodiff` pass, the passes that choose what trains (`freeze`,
`select-last-layers`) and the training pipelines (`train-full`, `train-last`).

- Gradients against float64 central finite differences on random models (every `nn`
  op), with `loss=mse` against a random target and with `loss=cross-entropy` on a 2-D
  output; a mutation test shows the check fails for a wrong gradient rule.
- Structure of `@train_step` on random models: no dead backward work (so no gradient
  of a value that does not depend on a trainable parameter), each trainable parameter
  that reaches the loss stored exactly once and never read after its store (frozen
  ones never stored), optimizer state created and stored, each update right after the
  last gradient rule that adds to it, differentiated max-pools with an index mask,
  `@forward` unchanged (and unchanged in meaning by `freeze`, `select-last-layers`);
  and, on hand-built models: no input gradient into a frozen prefix or branch, updates
  in the order of the sweep in a chain, a max-pool backward that reads the mask and
  not the pool's input.
- The training pipelines verify and run on random models with each optimizer; the
  loss decreases on a small model and on `examples/tiny_cnn.mlir`.
- Errors are a `PassFailedException` naming the problem, and one line from the CLI.

Under CI (`CI` set) the examples are derandomized, so a run is reproducible.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from unittest.mock import patch

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f64
from xdsl.ir import Operation, SSAValue
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.rules import RULES
from edge_opt.dialects import nn, train
from edge_opt.dialects.train import STATE_ATTR, STATE_OF_ATTR
from edge_opt.ir.context import make_context
from edge_opt.ir.layers import parametrised_layers
from edge_opt.ir.model_io import load_model, print_module, read_npz
from edge_opt.ir.session import Session, get_function
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.freeze import FreezePass
from edge_opt.passes.select_last_layers import SelectLastLayersPass
from edge_opt.support.dtypes import numpy_dtype, to_numpy
from edge_opt.testing import (
    ForwardBuilder,
    RandomModel,
    apply_passes,
    assert_pass_preserves_semantics,
    random_models,
)
from edge_opt.tools.driver import main

PROPERTY = settings(max_examples=100)
"""Settings of the property tests (a few ms to a few tens of ms per example)."""

OPTIMIZERS: dict[str, dict[str, object]] = {
    "sgd": {"optimizer": "sgd"},
    "momentum": {"optimizer": "sgd", "momentum": 0.9},
    "nesterov": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True,
                 "weight_decay": 0.01},
    "adam": {"optimizer": "adam"},
}


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def params(module: ModuleOp) -> dict[str, nn.ParamOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}


def trainable(module: ModuleOp) -> set[str]:
    return {n for n, p in params(module).items() if p.is_trainable}


def has_trainable(model: RandomModel) -> bool:
    """Whether a trainable parameter reaches the loss (else autodiff refuses)."""
    return bool(trainable(model.module) & reaching_params(model.module))


def autodiff(module: ModuleOp, **options) -> ModuleOp:
    """A verified copy of `module` with `@train_step`."""
    result = module.clone()
    AutodiffPass(**options).apply(make_context(), result)
    result.verify()
    return result


def body(module: ModuleOp, name: str = "train_step") -> list[Operation]:
    return list(get_function(module, name).body.block.ops)


def loss_index(ops: Sequence[Operation]) -> int:
    """Position of the loss op: the op whose result `@train_step` returns."""
    returned = ops[-1]
    assert isinstance(returned, func.ReturnOp)
    return ops.index(returned.operands[0].owner)


def backward(module: ModuleOp) -> list[Operation]:
    """The ops of `@train_step` after the loss (without the return)."""
    ops = body(module)
    return ops[loss_index(ops) + 1 : -1]


def stores(module: ModuleOp) -> Counter[str]:
    return Counter(
        op.param.string_value() for op in body(module) if isinstance(op, train.StoreOp)
    )


def output_type(module: ModuleOp) -> TensorType:
    type = get_function(module, "forward").function_type.outputs.data[0]
    assert isinstance(type, TensorType)
    return type


def labels_for(module: ModuleOp, loss: str, rng: np.random.Generator) -> np.ndarray:
    """A random target for `loss` on the first output of `@forward`."""
    type = output_type(module)
    shape = type.get_shape()
    if loss == "mse":
        return rng.standard_normal(shape).astype(numpy_dtype(type.element_type))
    return rng.integers(0, shape[1], shape[:1]).astype(np.int32)


def with_2d_output(model: RandomModel) -> RandomModel:
    """`model` with its first output reshaped to (batch, features) if it is not 2-D, so
    that it serves as logits."""
    module = model.module.clone()
    forward = get_function(module, "forward")
    returned = forward.body.block.last_op
    assert isinstance(returned, func.ReturnOp)
    output = returned.operands[0]
    shape = output_type(module).get_shape()
    if len(shape) != 2:
        rows = shape[0] if len(shape) > 2 else 1
        reshape = nn.ReshapeOp(output, (rows, math.prod(shape) // rows))
        forward.body.block.insert_op_before(reshape, returned)
        returned.operands = [reshape.result, *returned.operands[1:]]
        forward.update_function_type()
    module.verify()
    return RandomModel(module, model.inputs)


def differentiable_operands(op: Operation) -> Sequence[SSAValue]:
    """The operands `op`'s result is differentiable in: all, except the running
    statistics of a batch norm in training mode (its output does not depend on them)."""
    if isinstance(op, nn.BatchNormOp) and op.training is not None:
        return op.operands[:3]
    return op.operands


def reaching_params(module: ModuleOp) -> set[str]:
    """Parameters the loss on the first output of `@forward` is differentiable in (a
    walk back from the output over `differentiable_operands`)."""
    forward = get_function(module, "forward")
    returned = forward.body.block.last_op
    assert isinstance(returned, func.ReturnOp)
    seen: set[SSAValue] = set()
    work = [returned.operands[0]]
    found: set[str] = set()
    while work:
        value = work.pop()
        if value in seen:
            continue
        seen.add(value)
        owner = value.owner
        if isinstance(owner, nn.LoadOp):
            found.add(owner.param.string_value())
        elif isinstance(owner, Operation):
            work.extend(differentiable_operands(owner))
    return found


def cone(ops: Sequence[Operation], roots: Iterable[Operation]) -> set[Operation]:
    """The ops of `ops` that `roots` depend on (transitively), roots included."""
    inside = set(ops)
    result: set[Operation] = set()
    work = list(roots)
    while work:
        op = work.pop()
        if op in result or op not in inside:
            continue
        result.add(op)
        work.extend(o.owner for o in op.operands if isinstance(o.owner, Operation))
    return result


# --------------------------------------------------------------------------------------
# Hand-built models
# --------------------------------------------------------------------------------------


class Net(ForwardBuilder):
    """A hand-built float64 `@forward` (`ForwardBuilder`) with linear and conv layers
    by name."""

    def linear(self, x: SSAValue, out: int, name: str, trainable: bool = True,
               bias: bool = True) -> SSAValue:
        features = x.type.get_shape()[-1]  # type: ignore[attr-defined]
        w = self.param(f"{name}_weight", (out, features), trainable)
        b = self.param(f"{name}_bias", (out,), trainable) if bias else None
        return self.op(nn.LinearOp(x, w, b), name)

    def conv(self, x: SSAValue, out: int, name: str, trainable: bool = True) -> SSAValue:
        channels = x.type.get_shape()[1]  # type: ignore[attr-defined]
        w = self.param(f"{name}_weight", (out, channels, 3, 3), trainable)
        return self.op(nn.Conv2dOp(x, w, None, padding=(1, 1, 1, 1)), name)


def mlp(widths: Sequence[int], frozen: Sequence[int] = (), seed: int = 0,
        batch: int = 2) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """Linear layers `fc0, fc1, ...` of the given widths with tanh between them; the
    layers whose index is in `frozen` do not train."""
    net = Net((batch, widths[0]), seed=seed)
    h = net.x
    for i, width in enumerate(widths[1:]):
        h = net.linear(h, width, f"fc{i}", trainable=i not in frozen)
        if i < len(widths) - 2:
            h = net.op(nn.TanhOp(h), f"act{i}")
    return net.module(h), net.inputs


# --------------------------------------------------------------------------------------
# Gradients against finite differences
# --------------------------------------------------------------------------------------

STEPS = (1e-6, 1e-4)
"""Step sizes of the central differences; where they disagree (or the one-sided
differences at the smaller one do) the loss is not smooth there, and the element is
skipped."""

RTOL, ATOL = 1e-4, 1e-6
"""Tolerance of the comparison (`ATOL` relative to the loss, at least 1)."""

SAMPLES = 3
"""Elements checked per trainable parameter."""


@dataclass
class GradientCheck:
    checked: int = 0
    nonzero: int = 0
    skipped: int = 0

    def add(self, other: GradientCheck) -> None:
        self.checked += other.checked
        self.nonzero += other.nonzero
        self.skipped += other.skipped


def check_gradients(
    module: ModuleOp,
    inputs: dict[str, np.ndarray],
    loss: str,
    seed: int,
    reduction: str = "mean",
) -> GradientCheck:
    """Compares the gradient `autodiff{lr=1.0}` applies (value before minus after one
    step) with central differences of the `@train_step` loss, on `SAMPLES` random
    elements of every trainable parameter; raises AssertionError listing mismatches."""
    rng = np.random.default_rng((seed, 0xAD))  # not the stream of the model's values
    stepped = autodiff(module, loss=loss, reduction=reduction, lr=1.0)
    args = [*inputs.values(), labels_for(module, loss, rng)]
    session = Session(stepped)
    start = dict(session.params)

    def loss_at(name: str | None = None, index=(), delta: float = 0.0) -> float:
        session.params.clear()
        session.params.update(start)
        if name is not None:
            value = start[name].copy()
            value[index] += delta
            session.params[name] = value
        (value,) = session.run("train_step", args)
        return float(value)

    base = loss_at()
    gradients = {n: start[n] - session.params[n] for n in trainable(stepped)}
    tolerance = ATOL * max(1.0, abs(base))
    result = GradientCheck()
    failures = []
    for name, gradient in sorted(gradients.items()):
        shape = start[name].shape
        for flat in rng.choice(gradient.size, min(gradient.size, SAMPLES), replace=False):
            index = np.unravel_index(flat, shape)
            small, large = STEPS
            plus, minus = loss_at(name, index, small), loss_at(name, index, -small)
            central = (plus - minus) / (2 * small)
            wide = (loss_at(name, index, large) - loss_at(name, index, -large)) / (
                2 * large
            )
            forward, backward_ = (plus - base) / small, (base - minus) / small
            allowed = tolerance + RTOL * abs(central)
            if abs(central - wide) > allowed or abs(forward - backward_) > allowed:
                result.skipped += 1  # a kink (relu, max-pool, hardswish) nearby
                continue
            result.checked += 1
            result.nonzero += bool(gradient[index] != 0)
            if abs(gradient[index] - central) > allowed:
                failures.append(
                    f"@{name}{list(map(int, index))}: autodiff {gradient[index]!r}, "
                    f"finite differences {central!r} (step {large:g}: {wide!r})"
                )
    if failures:
        raise AssertionError(
            f"gradients (loss={loss} reduction={reduction}) differ from finite "
            "differences:\n  "
            + "\n  ".join(failures)
            + f"\n{print_module(stepped)}"
        )
    return result


def gradient_property(
    models: st.SearchStrategy[RandomModel],
    loss: str,
    totals: GradientCheck,
    config: settings = PROPERTY,
) -> Callable[[], None]:
    @config
    @given(models, st.integers(0, 2**32 - 1), st.sampled_from(["mean", "sum"]))
    def check(model: RandomModel, seed: int, reduction: str) -> None:
        assume(has_trainable(model))
        if loss == "cross-entropy":
            model = with_2d_output(model)
        totals.add(check_gradients(model.module, model.inputs, loss, seed, reduction))

    return check


def test_gradients_match_finite_differences_mse():
    totals = GradientCheck()
    models = random_models(dtype="f64", trainable="mixed", min_ops=2)
    gradient_property(models, "mse", totals, settings(PROPERTY, max_examples=300))()
    # The check is not vacuous: kinks rarely make it skip an element, and many of the
    # checked gradients are not zero.
    assert totals.checked >= 0.9 * (totals.checked + totals.skipped), totals
    assert totals.nonzero >= 150, totals


def test_gradients_match_finite_differences_cross_entropy():
    totals = GradientCheck()
    models = random_models(dtype="f64", trainable="mixed", min_ops=2)
    gradient_property(
        models, "cross-entropy", totals, settings(PROPERTY, max_examples=150)
    )()
    assert totals.checked >= 0.9 * (totals.checked + totals.skipped), totals
    assert totals.nonzero >= 75, totals


MUTATION_SEARCH = settings(
    max_examples=80,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],  # the first failure will do; no shrinking
    suppress_health_check=list(HealthCheck),
)


def _scaled(rule):
    """`rule`, with every gradient off by 0.1 %."""
    def wrong(b, op, dy, needs):
        return [None if g is None else b.scale(g, 1.001) for g in rule(b, op, dy, needs)]

    return wrong


def _dropped(rule):
    """`rule`, forgetting the gradient of the last operand that needs one."""
    def wrong(b, op, dy, needs):
        grads = list(rule(b, op, dy, needs))
        last = max(i for i, g in enumerate(grads) if g is not None)
        grads[last] = None
        return grads

    return wrong


@pytest.mark.parametrize(
    "op_type, ops, mutate",
    [
        (nn.TanhOp, ["linear", "tanh"], _scaled),
        (nn.LinearOp, ["linear"], _dropped),
        (nn.Conv2dOp, ["conv2d"], _scaled),
        (train.MaxPool2dWithIndicesOp, ["conv2d", "max_pool2d"], _scaled),
        (nn.LayerNormOp, ["layer_norm"], _scaled),
        (nn.MulOp, ["linear", "mul"], _dropped),
        (nn.EluOp, ["linear", "elu"], _scaled),
        (nn.PadOp, ["linear", "pad"], _scaled),
    ],
    ids=["tanh-scaled", "linear-dropped", "conv2d-scaled", "max_pool2d-scaled",
         "layer_norm-scaled", "mul-dropped", "elu-scaled", "pad-scaled"],
)
def test_gradient_check_catches_a_wrong_rule(monkeypatch, op_type, ops, mutate):
    monkeypatch.setitem(RULES, op_type, mutate(RULES[op_type]))
    models = random_models(ops=ops, dtype="f64", trainable="all", min_ops=2)
    with pytest.raises(AssertionError, match="differ from finite differences"):
        gradient_property(models, "mse", GradientCheck(), MUTATION_SEARCH)()


def test_gradient_check_skips_kinks():
    """relu(w) * x with w = [0, 1, -1]: at 0 the loss has a kink, where finite
    differences give half the slope; that element is skipped, the others checked."""
    net = Net((1, 3))
    w = net.param("w", (1, 3), value=np.array([[0.0, 1.0, -1.0]]))
    module = net.module(net.op(nn.MulOp(net.op(nn.ReluOp(w)), net.x)))
    check = check_gradients(module, net.inputs, "mse", 1)
    assert (check.checked, check.nonzero, check.skipped) == (2, 1, 1)


def test_output_that_is_a_parameter_trains():
    """`@forward` returns a load of a trainable parameter that another op reads too:
    the loss reads the parameter directly, and its update still comes (once)."""
    net = Net((2, 3))
    w = net.param("w", (2, 3))
    product = net.op(nn.MulOp(net.x, w))
    module = net.module(w, product)
    assert stores(autodiff(module, loss="mse")) == {"w": 1}
    check = check_gradients(module, net.inputs, "mse", 0)
    assert check.checked == check.nonzero == SAMPLES


# --------------------------------------------------------------------------------------
# Structure of @train_step on random models
# --------------------------------------------------------------------------------------


MIXED_MODELS_AND_OPTIMIZERS = given(
    random_models(dtype="f64", trainable="mixed"), st.sampled_from(sorted(OPTIMIZERS))
)
"""A random f64 model with some parameters frozen, and an optimizer."""


@PROPERTY
@MIXED_MODELS_AND_OPTIMIZERS
def test_no_dead_backward_work(model: RandomModel, optimizer: str):
    """Every op after the loss feeds a store of a trainable parameter (or of its
    optimizer state), so `dce` removes none of them; and no op computes the gradient
    of a value that does not depend on a trainable parameter (it could feed no store)."""
    assume(has_trainable(model))
    module = autodiff(model.module, loss="mse", **OPTIMIZERS[optimizer])
    ops = backward(module)
    store_ops = [op for op in ops if isinstance(op, train.StoreOp)]
    useful = cone(ops, store_ops)
    dead = [op.name for op in ops if op not in useful]
    assert not dead, f"backward ops that feed no store: {dead}\n{print_module(module)}"

    cleaned = module.clone()
    DeadCodeElimination().apply(make_context(), cleaned)
    assert [op.name for op in backward(cleaned)] == [op.name for op in ops]

    state = params(module)
    for store in store_ops:
        param = state[store.param.string_value()]
        owner = param.attributes.get(STATE_OF_ATTR)
        if STATE_ATTR in param.attributes:
            assert owner is None or state[owner.string_value()].is_trainable
        else:
            assert param.is_trainable


@PROPERTY
@MIXED_MODELS_AND_OPTIMIZERS
def test_each_reaching_trainable_parameter_is_stored_once(
    model: RandomModel, optimizer: str
):
    """Trainable parameters the loss depends on are stored exactly once, after every
    read of them; frozen ones and those the loss does not reach never; optimizer state
    is created for each updated parameter, zero, frozen, and stored once per step."""
    assume(has_trainable(model))
    options = OPTIMIZERS[optimizer]
    module = autodiff(model.module, loss="mse", **options)
    updated = trainable(model.module) & reaching_params(model.module)
    stored = stores(module)

    model_params = {
        n for n, p in params(module).items() if STATE_ATTR not in p.attributes
    }
    assert model_params == set(params(model.module))
    assert {n: c for n, c in stored.items() if n in model_params} == {
        n: 1 for n in updated
    }

    expected_state: dict[tuple[str, str], int] = {}
    kinds = {"adam": ["exp_avg", "exp_avg_sq"]}.get(
        str(options["optimizer"]), ["momentum"] if options.get("momentum") else []
    )
    for name in updated:
        for kind in kinds:
            expected_state[(kind, name)] = 1
    if options["optimizer"] == "adam" and updated:
        expected_state[("step", "")] = 1
    state = {}
    for name, param in params(module).items():
        if STATE_ATTR not in param.attributes:
            continue
        assert not param.is_trainable
        assert not np.any(to_numpy(param.value))
        owner = param.attributes.get(STATE_OF_ATTR)
        key = (param.attributes[STATE_ATTR].data, owner.string_value() if owner else "")
        assert key not in state, f"two {key} parameters"
        state[key] = stored[name]
        if owner is not None:
            assert param.type == params(module)[owner.string_value()].type
    assert state == expected_state

    # No read of a parameter after its store (at the buffer level the store writes in
    # place).
    ops = body(module)
    for position, op in enumerate(ops):
        if isinstance(op, train.StoreOp):
            name = op.param.string_value()
            later_reads = [
                o.name
                for o in ops[position + 1 :]
                for v in o.operands
                if isinstance(v.owner, nn.LoadOp) and v.owner.param.string_value() == name
            ]
            assert not later_reads, f"@{name} read after its store by {later_reads}"


@PROPERTY
@given(random_models(dtype="f64", trainable="mixed"), st.integers(0, 2**32 - 1))
def test_optimizer_state_after_one_step(model: RandomModel, seed: int):
    """After one step from zero state the momentum buffer is the gradient, Adam's
    first moment (1 - beta1) times it and its step counter 1 (then 2)."""
    assume(has_trainable(model))
    labels = labels_for(model.module, "mse", np.random.default_rng(seed))
    args = [*model.inputs.values(), labels]
    sgd = Session(autodiff(model.module, loss="mse", lr=1.0))
    before = dict(sgd.params)
    sgd.run("train_step", args)
    momentum = Session(autodiff(model.module, loss="mse", lr=1.0, momentum=0.5))
    momentum.run("train_step", args)
    adam = Session(autodiff(model.module, loss="mse", optimizer="adam", beta1=0.75))
    adam.run("train_step", args)
    for name in trainable(model.module) & reaching_params(model.module):
        gradient = before[name] - sgd.params[name]
        atol = 1e-12 * (1.0 + np.max(np.abs(before[name])))
        np.testing.assert_allclose(momentum.params[f"{name}_momentum"], gradient,
                                   rtol=1e-9, atol=atol)
        np.testing.assert_allclose(momentum.params[name], sgd.params[name], rtol=1e-12)
        np.testing.assert_allclose(adam.params[f"{name}_exp_avg"], 0.25 * gradient,
                                   rtol=1e-9, atol=atol)
    if "adam_step" in adam.params:
        assert adam.params["adam_step"] == 1
        adam.run("train_step", args)
        assert adam.params["adam_step"] == 2


@dataclass
class RuleCall:
    """One gradient rule applied while building `@train_step`: the forward op (in the
    copy) and the range of positions in `@train_step` of the ops it emitted."""

    op: Operation
    start: int
    end: int


def traced_autodiff(module: ModuleOp, **options) -> tuple[ModuleOp, list[RuleCall]]:
    """`autodiff`, recording which ops each gradient rule emitted."""
    calls: list[RuleCall] = []

    def traced(rule):
        def run(b, op, dy, needs):
            start = len(b.block.ops)
            grads = rule(b, op, dy, needs)
            calls.append(RuleCall(op, start, len(b.block.ops)))
            return grads

        return run

    with patch.dict(RULES, {k: traced(v) for k, v in RULES.items()}):
        return autodiff(module, **options), calls


@PROPERTY
@MIXED_MODELS_AND_OPTIMIZERS
def test_updates_come_as_soon_as_gradients_are_complete(
    model: RandomModel, optimizer: str
):
    """A parameter's update (and store) follows the last gradient rule that adds to
    its gradient with no other rule's work in between, so gradients do not pile up."""
    assume(has_trainable(model))
    module, calls = traced_autodiff(model.module, loss="mse", **OPTIMIZERS[optimizer])
    ops = body(module)
    in_a_rule = {i for call in calls for i in range(call.start, call.end)}
    for position, op in enumerate(ops):
        if not isinstance(op, train.StoreOp):
            continue
        name = op.param.string_value()
        uses = [
            call.end
            for call in calls
            if any(
                isinstance(o.owner, nn.LoadOp) and o.owner.param.string_value() == name
                for o in call.op.operands
            )
        ]
        if not uses:
            continue  # optimizer state, or the output is the parameter itself
        complete = max(uses)
        between = [ops[i].name for i in range(complete, position) if i in in_a_rule]
        assert not between, (
            f"@{name}: gradient complete at op {complete}, stored at {position}, with "
            f"backward work in between: {between}\n{print_module(module)}"
        )


@PROPERTY
@MIXED_MODELS_AND_OPTIMIZERS
def test_autodiff_keeps_forward(model: RandomModel, optimizer: str):
    assume(has_trainable(model))
    pass_ = AutodiffPass(loss="mse", **OPTIMIZERS[optimizer])  # type: ignore[arg-type]
    after = assert_pass_preserves_semantics(pass_, model.module, model.inputs)
    forward = print_module(ModuleOp([get_function(model.module, "forward").clone()]))
    assert print_module(ModuleOp([get_function(after, "forward").clone()])) == forward


@PROPERTY
@given(random_models(dtype="f64", trainable="mixed"), st.data())
def test_freeze_keeps_forward_and_sets_flags(model: RandomModel, data: st.DataObject):
    names = sorted(params(model.module))
    assume(names)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    regex = "|".join(re.escape(n) for n in chosen)
    after = assert_pass_preserves_semantics(
        FreezePass(trainable=regex), model.module, model.inputs
    )
    assert trainable(after) == set(chosen)
    frozen = data.draw(st.sampled_from(chosen))
    after = assert_pass_preserves_semantics(
        FreezePass(frozen=re.escape(frozen)), after, model.inputs
    )
    assert trainable(after) == set(chosen) - {frozen}


@PROPERTY
@given(random_models(dtype="f64", trainable="mixed"), st.integers(1, 3))
def test_select_last_layers_keeps_forward(model: RandomModel, layers: int):
    forward = get_function(model.module, "forward")
    candidates = [
        layer
        for layer in parametrised_layers(forward)
        if any(params(model.module)[n].is_trainable for n in layer.params)
    ]
    assume(len(candidates) >= layers)
    after = assert_pass_preserves_semantics(
        SelectLastLayersPass(layers=layers), model.module, model.inputs
    )
    kept = {n for layer in candidates[-layers:] for n in layer.params}
    assert trainable(after) == trainable(model.module) & kept
    assert trainable(after)


@PROPERTY
@given(random_models(dtype="f64", trainable="mixed"))
def test_differentiated_max_pools_keep_an_index_mask(model: RandomModel):
    """Every max-pool on the gradient path runs with indices; its backward reads the
    `ui8` mask."""
    assume(has_trainable(model))
    module = autodiff(model.module, loss="mse")
    step = get_function(module, "train_step")
    ops = body(module)
    depends: set[SSAValue] = set()
    names = trainable(module)
    for op in ops:
        if isinstance(op, nn.LoadOp) and op.param.string_value() in names:
            depends.add(op.result)
        elif any(o in depends for o in differentiable_operands(op)):
            depends.update(op.results)
    for op in step.walk():
        if isinstance(op, nn.MaxPool2dOp):
            assert op.input not in depends, "a differentiated nn.max_pool2d is left"
        if isinstance(op, train.MaxPool2dGradOp):
            mask = op.indices.owner
            assert isinstance(mask, train.MaxPool2dWithIndicesOp)
            assert op.indices is mask.indices
            assert op.indices.type.element_type == train.ui8  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# Structure of @train_step on hand-built models
# --------------------------------------------------------------------------------------


def names(ops: Iterable[Operation]) -> list[str]:
    return [op.name for op in ops]


def reads(op: Operation, value: SSAValue) -> bool:
    return any(o is value for o in op.operands)


def forward_value(module: ModuleOp, name: str) -> SSAValue:
    """The value named `%name` in the forward copy of `@train_step`."""
    for op in body(module):
        for result in op.results:
            if result.name_hint == name:
                return result
    raise KeyError(name)


def test_frozen_prefix_gets_no_backward():
    """conv (frozen) -> relu -> max-pool -> linear (trainable): the backward is the
    linear layer's weight gradient and nothing that flows into the prefix."""
    net = Net((2, 1, 4, 4))
    c = net.conv(net.x, 2, "conv", trainable=False)
    r = net.op(nn.ReluOp(c), "r")
    p = net.op(nn.MaxPool2dOp(r, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False), "p")
    flat = net.op(nn.ReshapeOp(p, (2, 8)), "flat")
    module = autodiff(net.module(net.linear(flat, 3, "fc")), loss="mse")
    assert names(backward(module)) == [
        "train.mse_grad",
        "train.linear_grad_weight",
        "nn.reduce_sum",
        "train.sgd",
        "train.store",
        "train.sgd",
        "train.store",
    ]
    # The frozen pool is not differentiated, so it keeps no index mask either.
    assert "train.max_pool2d_with_indices" not in names(body(module))


def test_frozen_layer_in_the_middle_propagates_but_does_not_train():
    model, inputs = mlp([3, 4, 5, 2], frozen=[1])
    module = autodiff(model, loss="mse")
    ops = backward(module)
    grad_inputs = [op for op in ops if isinstance(op, train.LinearGradInputOp)]
    weights = [op.operands[1].owner for op in grad_inputs]
    assert [w.param.string_value() for w in weights] == ["fc2_weight", "fc1_weight"]
    grad_weights = [op.result.name_hint for op in ops
                    if isinstance(op, train.LinearGradWeightOp)]
    assert grad_weights == ["d_fc2_weight", "d_fc0_weight"]
    assert stores(module) == {"fc2_weight": 1, "fc2_bias": 1, "fc0_weight": 1,
                              "fc0_bias": 1}
    check_gradients(model, inputs, "mse", 0)


def test_frozen_branch_gets_no_backward():
    """relu(linear_trainable(x)) + sigmoid(linear_frozen(x)): nothing differentiates
    the frozen branch (no sigmoid gradient) and nothing flows into the input."""
    net = Net((2, 3))
    a = net.op(nn.ReluOp(net.linear(net.x, 4, "a")))
    b = net.op(nn.SigmoidOp(net.linear(net.x, 4, "b", trainable=False)))
    module = autodiff(net.module(net.op(nn.AddOp(a, b))), loss="mse")
    kinds = set(names(backward(module)))
    assert "train.sigmoid_grad" not in kinds
    assert "train.linear_grad_input" not in kinds
    assert set(stores(module)) == {"a_weight", "a_bias"}


def test_updates_follow_the_sweep_in_a_chain():
    """In a chain of layers each layer's update comes before any backward work of the
    layers before it, so one gradient is alive at a time."""
    module, _ = mlp([3, 4, 5, 6, 2])
    module = autodiff(module, loss="mse")
    ops = backward(module)
    position = {op: i for i, op in enumerate(ops)}
    store_at = {op.param.string_value(): i for i, op in enumerate(ops)
                if isinstance(op, train.StoreOp)}
    for layer in range(1, 4):
        updated = max(store_at[f"fc{layer}_weight"], store_at[f"fc{layer}_bias"])
        earlier = {
            get_function(module, "train_step").body.block.args[0],
            forward_value(module, f"act{layer - 1}"),
        } | {
            forward_value(module, f"fc{j}{suffix}")
            for j in range(layer)
            for suffix in ("", "_weight", "_bias")
        }
        for op in ops:
            if isinstance(op, train.LinearGradWeightOp) and \
                    op.result.name_hint == f"d_fc{layer}_weight":
                continue  # reads act{layer - 1} as its input: this layer's work
            if any(reads(op, v) for v in earlier):
                assert position[op] > updated, (
                    f"{op.name} (backward of a layer before fc{layer}) comes before "
                    f"fc{layer}'s update\n{print_module(module)}"
                )


def test_shared_parameter_is_updated_after_its_first_use():
    """A weight used by the first and the last layer is stored once, after the first
    layer's gradient (its last use in the sweep)."""
    net = Net((2, 3))
    h = net.op(nn.TanhOp(net.op(nn.LinearOp(net.x, net.param("w", (3, 3))))), "h")
    h = net.linear(h, 3, "mid")
    y = net.op(nn.LinearOp(h, net.op(nn.LoadOp("w", TensorType(f64, (3, 3))))))
    module = net.module(y)
    stepped = autodiff(module, loss="mse")
    ops = backward(stepped)
    assert stores(stepped) == {"w": 1, "mid_weight": 1, "mid_bias": 1}
    store_w = next(i for i, op in enumerate(ops)
                   if isinstance(op, train.StoreOp) and op.param.string_value() == "w")
    store_mid = next(i for i, op in enumerate(ops) if isinstance(op, train.StoreOp)
                     and op.param.string_value() == "mid_weight")
    tanh_grad = next(i for i, op in enumerate(ops) if isinstance(op, train.TanhGradOp))
    assert store_mid < tanh_grad < store_w
    check_gradients(module, net.inputs, "mse", 0)


def test_update_is_not_delayed_by_a_use_the_loss_does_not_need():
    """@w feeds a second output early in @forward and the last layer: its update comes
    right after the last layer's backward, not after the first layer's."""
    net = Net((2, 3))
    w = net.param("w", (3, 3))
    aux = net.op(nn.ReluOp(w), "aux")
    h = net.op(nn.TanhOp(net.linear(net.x, 3, "first")), "h")
    y = net.op(nn.LinearOp(h, net.op(nn.LoadOp("w", w.type))), "y")
    module = net.module(y, aux)
    ops = backward(autodiff(module, loss="mse"))
    assert names(ops)[:6] == [
        "train.mse_grad",
        "train.linear_grad_input",
        "train.linear_grad_weight",
        "train.sgd",
        "train.store",
        "train.tanh_grad",
    ]
    assert ops[4].param.string_value() == "w"
    check_gradients(module, net.inputs, "mse", 0)


def test_max_pool_backward_reads_the_mask_not_the_input():
    """conv -> max-pool -> linear: the conv output (the pool's input) is read by no
    backward op; the pool's backward reads the `ui8` index mask."""
    net = Net((2, 1, 4, 4))
    c = net.conv(net.x, 2, "conv")
    p = net.op(nn.MaxPool2dOp(c, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False), "p")
    flat = net.op(nn.ReshapeOp(p, (2, 8)), "flat")
    module = net.module(net.linear(flat, 3, "fc"))
    stepped = autodiff(module, loss="mse")
    pool_input = forward_value(stepped, "conv")
    readers = [op.name for op in backward(stepped) if reads(op, pool_input)]
    assert readers == []
    (grad,) = [op for op in backward(stepped) if isinstance(op, train.MaxPool2dGradOp)]
    assert isinstance(grad.indices.owner, train.MaxPool2dWithIndicesOp)
    assert str(grad.indices.type) == "tensor<2x2x2x2xui8>"
    check_gradients(module, net.inputs, "mse", 0)


def test_max_pool_input_is_read_only_by_rules_that_need_it():
    """conv -> relu -> max-pool: the relu's backward reads its output (the pool's
    input); nothing else does."""
    net = Net((2, 1, 4, 4))
    r = net.op(nn.ReluOp(net.conv(net.x, 2, "conv")), "r")
    p = net.op(nn.MaxPool2dOp(r, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False), "p")
    module = net.module(net.op(nn.ReshapeOp(p, (2, 8))))
    stepped = autodiff(module, loss="mse")
    pool_input = forward_value(stepped, "r")
    readers = [op.name for op in backward(stepped) if reads(op, pool_input)]
    assert readers == ["train.relu_grad"]


# --------------------------------------------------------------------------------------
# Training pipelines
# --------------------------------------------------------------------------------------


PIPELINES = ["train-full", "train-last{layers=1}", "train-last{layers=2}"]


def with_options(pipeline: str, options: str) -> str:
    if pipeline.endswith("}"):
        return f"{pipeline[:-1]} {options}}}"
    return f"{pipeline}{{{options}}}"


OPTIMIZER_OPTIONS = {
    "sgd": "optimizer=sgd lr=0.01",
    "momentum": "optimizer=sgd lr=0.01 momentum=0.9",
    "adam": "optimizer=adam lr=0.001",
}


@PROPERTY
@given(
    random_models(trainable="mixed"),
    st.sampled_from(PIPELINES),
    st.sampled_from(sorted(OPTIMIZER_OPTIONS)),
    st.integers(0, 2**32 - 1),
)
def test_training_pipelines_verify_and_run(
    model: RandomModel, pipeline: str, optimizer: str, seed: int
):
    layers = re.search(r"layers=(\d+)", pipeline)
    forward = get_function(model.module, "forward")
    candidates = [
        layer
        for layer in parametrised_layers(forward)
        if any(params(model.module)[n].is_trainable for n in layer.params)
    ]
    assume(len(candidates) >= (int(layers.group(1)) if layers else 1))
    # Something the strategy keeps trainable must reach the loss, else autodiff refuses.
    selected = (
        {n for layer in candidates[-int(layers.group(1)) :] for n in layer.params}
        if layers
        else set(params(model.module))
    )
    assume(trainable(model.module) & selected & reaching_params(model.module))
    spec = with_options(pipeline, f"loss=mse {OPTIMIZER_OPTIONS[optimizer]}")
    module = assert_pass_preserves_semantics(spec, model.module, model.inputs)
    if layers:
        kept = {n for layer in candidates[-int(layers.group(1)) :] for n in layer.params}
        assert trainable(module) <= kept
    assert set(stores(module)) - {
        n for n, p in params(module).items() if STATE_ATTR in p.attributes
    } == trainable(module) & reaching_params(model.module)
    session = Session(module)
    args = [*model.inputs.values(),
            labels_for(model.module, "mse", np.random.default_rng(seed))]
    for _ in range(2):
        (loss,) = session.run("train_step", args)
        assert loss.shape == () and np.isfinite(loss)
    for name, value in session.params.items():
        assert np.all(np.isfinite(value)), f"@{name} is not finite after two steps"


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_OPTIONS))
def test_loss_decreases_on_a_small_model(optimizer: str):
    module, inputs = mlp([4, 8, 8, 3], batch=8, seed=1)
    options = {
        "sgd": "optimizer=sgd lr=0.1",
        "momentum": "optimizer=sgd lr=0.05 momentum=0.9",
        "adam": "optimizer=adam lr=0.01",
    }[optimizer]
    session = Session(apply_passes(f"train-full{{loss=mse {options}}}", module))
    target = np.random.default_rng(2).standard_normal((8, 3))
    losses = [float(session.run("train_step", [inputs["x0"], target])[0])
              for _ in range(20)]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(
    "pipeline", ["train-full{lr=0.05}", "train-last{layers=2 lr=0.05}"]
)
def test_loss_decreases_on_tiny_cnn(pipeline: str):
    module = load_model(ROOT / "examples" / "tiny_cnn.mlir")
    data = read_npz(ROOT / "examples" / "tiny_cnn_input.npz")
    session = Session(apply_passes(pipeline, module))
    losses = [float(session.run("train_step", [data["image"], data["labels"]])[0])
              for _ in range(20)]
    assert losses[-1] < 0.9 * losses[0], losses


def test_train_last_trains_the_last_layers_of_tiny_cnn():
    module = load_model(ROOT / "examples" / "tiny_cnn.mlir")
    assert set(stores(apply_passes("train-last{layers=1}", module))) == {"fc_weight", "fc_bias"}
    stepped = apply_passes("train-last{layers=2 optimizer=adam}", module)
    assert set(stores(stepped)) == {
        "fc_weight", "fc_bias", "conv2_weight", "conv2_bias",
        "fc_weight_exp_avg", "fc_weight_exp_avg_sq", "fc_bias_exp_avg",
        "fc_bias_exp_avg_sq", "conv2_weight_exp_avg", "conv2_weight_exp_avg_sq",
        "conv2_bias_exp_avg", "conv2_bias_exp_avg_sq", "adam_step",
    }
    kinds = set(names(backward(stepped)))
    # Backpropagation stops at conv2: nothing flows into its input.
    assert "train.conv2d_grad_input" not in kinds
    assert "train.max_pool2d_grad" not in kinds


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def _vector_model() -> ModuleOp:
    net = Net((4,))
    return net.module(net.linear(net.x, 3, "fc"))


ERRORS: list[tuple[str, Callable[[], ModuleOp], str, str]] = [
    (
        "autodiff",
        lambda: mlp([3, 2], frozen=[0])[0],
        "autodiff: no parameter is trainable",
        "no-trainable",
    ),
    (
        "autodiff",
        _vector_model,
        (
            r"autodiff: loss=cross-entropy needs @forward to return \(batch, classes\) "
            r"logits, but it returns tensor<3xf64>"
        ),
        "cross-entropy-rank",
    ),
    (
        'freeze{trainable="nomatch"}',
        lambda: mlp([3, 2])[0],
        (
            r"freeze: trainable='nomatch' matches no parameter \(the model has 2: "
            r"fc0_weight, fc0_bias\)"
        ),
        "freeze-nomatch",
    ),
    (
        'freeze{trainable="fc[0"}',
        lambda: mlp([3, 2])[0],
        r"freeze: trainable='fc\[0' is not a regular expression",
        "freeze-bad-regex",
    ),
    (
        "select-last-layers{layers=99}",
        lambda: mlp([3, 2, 2])[0],
        r"select-last-layers: layers=99, but @forward has only 2 layer\(s\)",
        "select-too-many",
    ),
    (
        "autodiff{loss=mse},autodiff{loss=mse}",
        lambda: mlp([3, 2])[0],
        "autodiff: the module already has @train_step; run autodiff once",
        "autodiff-twice",
    ),
]


@pytest.mark.parametrize(
    "pipeline, build, message", [e[:3] for e in ERRORS], ids=[e[3] for e in ERRORS]
)
def test_errors_are_pass_failures(pipeline: str, build, message: str):
    with pytest.raises(PassFailedException, match=message):
        apply_passes(pipeline, build())


@pytest.mark.parametrize(
    "pipeline, build, message", [e[:3] for e in ERRORS], ids=[e[3] for e in ERRORS]
)
def test_errors_from_the_cli_are_one_line(tmp_path, capsys, pipeline: str, build,
                                          message: str):
    path = tmp_path / "model.mlir"
    path.write_text(print_module(build()))
    assert main([str(path), "-p", pipeline]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("edge-opt: error: pass failed: ")
    assert re.search(message, lines[0])
