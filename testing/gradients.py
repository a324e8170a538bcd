"""Gradients of a training step against central finite differences of its loss: the
property of `edge-opt fuzz --gradients PIPELINE`.

`equivalence_property` checks that a pass keeps the meaning of a training step, but a
bug in the step itself (a gradient rule with the wrong sign, an accumulation that
forgets to average) is in both the step before and after the pass. This property has
an oracle of its own: the pipeline's `autodiff` runs as plain SGD with `lr=1`, so that
one step moves every trainable parameter by minus its gradient, and sampled elements
of that gradient must agree with central differences of the loss `@train_step`
returns, in float64 (the models of a `--gradients` campaign are f64).

Where the loss is not smooth near the element (a relu, a max-pool or a hardswish at a
kink), differences at two step sizes, or the one-sided differences, disagree: the
element is skipped.

With `bn=batch` or `bn=batch-update` (and `accumulate=1`, or `accumulate=k` with
`bn-accumulate=exact`, which must give the whole batch's), the running statistics of
each batch norm that normalises with them in `@forward` are checked too, against an
oracle that does not involve `autodiff`: `@forward` interpreted with those batch norms
in training mode, as the step runs them, gives each one's input, whose per-channel
mean and unbiased variance the step must blend into the running statistics by
PyTorch's rule, `(1 - bn-momentum) running + bn-momentum batch` (`batch-update`), or
leave unchanged (`batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, UnitAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from edge_opt.dialects import nn
from edge_opt.ir.model_io import print_module
from edge_opt.ir.session import Session, get_function
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.errors import UserError
from edge_opt.testing.campaign import training_labels
from edge_opt.testing.equivalence import apply_passes
from edge_opt.testing.strategies import RandomModel

STEPS = (1e-6, 1e-4)
"""Step sizes of the central differences (see the module docstring)."""

RTOL, ATOL = 1e-4, 1e-6
"""Tolerance of the comparison (`ATOL` relative to the loss, at least 1)."""

SAMPLES = 3
"""Elements checked per trainable parameter."""


def sgd_step(pipeline: str) -> tuple[ModulePass, ...]:
    """The passes of `pipeline` (named pipelines expanded) with every `autodiff` as
    plain SGD with `lr=1` (no momentum, no weight decay): the update is the gradient.
    A pipeline without `autodiff` is a UserError."""
    passes = list(expand(parse_pipeline(pipeline)))
    plain = {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "nesterov": False,
             "weight_decay": 0.0}
    found = [i for i, p in enumerate(passes) if isinstance(p, AutodiffPass)]
    if not found:
        raise UserError(f"--gradients: '{pipeline}' builds no training step (it runs no "
                        "autodiff); give a training pipeline, e.g. 'train-full{loss=mse}'")
    for i in found:
        passes[i] = replace(passes[i], **plain)
    return tuple(passes)


def _stepped_by_gradient(module: ModuleOp, passes: tuple[ModulePass, ...]) -> list[str]:
    """The trainable parameters, but, when a batch norm trains in a batch mode, the
    running statistics of the batch norms: `bn=batch-update` overwrites them with the
    batch's, and their gradient is zero (the batch normalises with its own)."""
    batch_mode = any(isinstance(p, AutodiffPass) and p.bn != "frozen" for p in passes)
    statistics = {
        operand.owner.param.string_value()
        for op in module.walk() if batch_mode and isinstance(op, nn.BatchNormOp)
        for operand in (op.mean, op.var) if isinstance(operand.owner, nn.LoadOp)
    }
    return sorted(op.sym_name.data for op in module.ops
                  if isinstance(op, nn.ParamOp) and op.is_trainable
                  and op.sym_name.data not in statistics)


def _live_ops(function: func.FuncOp) -> set[Operation]:
    """The ops of `function` an output depends on (the training step has no others)."""
    live: set[Operation] = set()
    stack = [function.body.block.last_op]
    while stack:
        op = stack.pop()
        if op is None or op in live:
            continue
        live.add(op)
        stack.extend(o.owner for o in op.operands if isinstance(o.owner, Operation))
    return live


def _running_statistics(module: ModuleOp) -> list[tuple[str, str, nn.BatchNormOp]]:
    """(mean param, variance param, op) of each live batch norm of `@forward` that
    normalises with running statistics held in parameters."""
    forward = get_function(module, "forward")
    live = _live_ops(forward)
    return [
        (op.mean.owner.param.string_value(), op.var.owner.param.string_value(), op)
        for op in forward.walk()
        if op in live and isinstance(op, nn.BatchNormOp) and op.training is None
        and isinstance(op.mean.owner, nn.LoadOp) and isinstance(op.var.owner, nn.LoadOp)
    ]


def _batch_norm_inputs(model: RandomModel) -> list[tuple[str, str, np.ndarray]]:
    """(mean param, variance param, input) of each batch norm of `_running_statistics`,
    the input computed by `@forward` with every batch norm in training mode."""
    probe = model.module.clone()
    norms = _running_statistics(probe)
    for _, _, op in norms:
        op.properties["training"] = UnitAttr()
    forward = get_function(probe, "forward")
    returned = forward.body.block.last_op
    assert isinstance(returned, func.ReturnOp)
    outputs = [*returned.operands, *(op.input for _, _, op in norms)]
    returned.operands = outputs
    forward.function_type = FunctionType.from_lists(
        forward.function_type.inputs.data, [v.type for v in outputs])
    values = Session(probe).run("forward", list(model.inputs.values()))
    tail = values[len(values) - len(norms):] if norms else ()
    return [(mean, var, x) for (mean, var, _), x in zip(norms, tail, strict=True)]


def check_running_statistics(passes: tuple[ModulePass, ...], model: RandomModel,
                             before: dict[str, np.ndarray],
                             after: dict[str, np.ndarray]) -> list[str]:
    """The running statistics whose value after the step (`after`, from `before`)
    is not what the pipeline's `bn` mode prescribes (see the module docstring), as
    messages; none when no `autodiff` of `passes` trains batch norms in a batch mode
    with `accumulate=1` or exact accumulation."""
    modes = [p for p in passes if isinstance(p, AutodiffPass)]
    if len(modes) != 1 or modes[0].bn == "frozen" or (
            modes[0].accumulate != 1 and modes[0].bn_accumulate != "exact"):
        return []
    momentum = modes[0].bn_momentum if modes[0].bn == "batch-update" else 0.0
    failures = []
    for mean_name, var_name, x in _batch_norm_inputs(model):
        axes = (0, *range(2, x.ndim))
        batch = {mean_name: x.mean(axis=axes), var_name: x.var(axis=axes, ddof=1)}
        for name, statistic in batch.items():
            expected = (1.0 - momentum) * before[name] + momentum * statistic
            if not np.allclose(after[name], expected, rtol=1e-7, atol=1e-9):
                failures.append(
                    f"@{name}: the step stores {after[name]!r}, expected "
                    f"(1 - {momentum}) * {before[name]!r} + {momentum} * {statistic!r}")
    return failures


def check_gradients(pipeline: str | tuple[ModulePass, ...], model: RandomModel,
                    seed: int = 0) -> int:
    """Checks the gradients of the training step `pipeline` builds for `model` (see
    the module docstring) on `SAMPLES` random elements (with `seed`) of every trainable
    parameter; returns how many elements were compared. Raises AssertionError listing
    the elements whose gradient differs, PassFailedException if the pipeline refuses
    the model."""
    passes = sgd_step(pipeline) if isinstance(pipeline, str) else pipeline
    stepped = apply_passes(passes, model.module)
    args = [*model.inputs.values(), training_labels(model.module)]
    session = Session(stepped)
    start = {k: np.array(v) for k, v in session.params.items()}

    def loss_at(name: str | None = None, index: tuple = (), delta: float = 0.0) -> float:
        session.params.clear()
        session.params.update({k: v.copy() for k, v in start.items()})
        if name is not None:
            session.params[name][index] += delta
        (value,) = session.run("train_step", args)
        return float(value)

    base = loss_at()
    statistics = check_running_statistics(passes, model, start, dict(session.params))
    if statistics:
        raise AssertionError(
            "the training step's running statistics differ from the batch's:\n  "
            + "\n  ".join(statistics)
            + f"\n--- after the pipeline ---\n{print_module(stepped)}")
    gradients = {n: start[n] - session.params[n] for n in _stepped_by_gradient(stepped, passes)}
    rng = np.random.default_rng((seed, 0xAD))
    tolerance = ATOL * max(1.0, abs(base))
    failures, checked = [], 0
    for name, gradient in gradients.items():
        for flat in rng.choice(gradient.size, min(gradient.size, SAMPLES), replace=False):
            index = np.unravel_index(flat, gradient.shape)
            small, large = STEPS
            plus, minus = loss_at(name, index, small), loss_at(name, index, -small)
            central = (plus - minus) / (2 * small)
            wide = (loss_at(name, index, large) - loss_at(name, index, -large)) / (2 * large)
            allowed = tolerance + RTOL * abs(central)
            one_sided = abs((plus - base) / small - (base - minus) / small)
            if abs(central - wide) > allowed or one_sided > allowed:
                continue  # a kink nearby
            checked += 1
            if abs(gradient[index] - central) > allowed:
                failures.append(f"@{name}{list(map(int, index))}: the step's gradient "
                                f"{gradient[index]!r}, finite differences {central!r}")
    if failures:
        raise AssertionError(
            "the training step's gradients differ from finite differences of its loss "
            "(SGD, lr=1):\n  " + "\n  ".join(failures)
            + f"\n--- after the pipeline ---\n{print_module(stepped)}"
        )
    return checked


def gradient_property(pipeline: str) -> Callable[[RandomModel], None]:
    """`check_gradients` with `pipeline` as the property of a campaign (whose models
    must be f64 and have a trainable parameter: `Campaign(dtype="f64",
    training=True)`)."""
    passes = sgd_step(pipeline)

    def check(model: RandomModel) -> None:
        check_gradients(passes, model)

    return check
