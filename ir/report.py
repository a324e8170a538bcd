"""`edge-opt report`: what a training strategy costs, per parameter and in total.

For a module after a pipeline: which parameters train (those `@train_step` stores), their
gradient and optimizer-state bytes, and FLOPs (`edge_opt.ir.cost`) split by phase of
`@train_step` — forward (the ops before the loss), loss (the loss and its gradient),
backward (the other gradient ops) and optimizer (the updates, with the scatter of a
channel-restricted update, and the stores). Without a `@train_step` nothing trains and
only `@forward` is counted.

Backward memory is what training adds to inference: the forward values the backward
reads (saved activations, e.g. a max-pool's index mask rather than its input), the weight
gradients and the optimizer state. With gradient accumulation (`accumulate=k`), the
saved activations are those of one micro-batch (the largest: micro-batches run one
after the other), and the FLOPs of all of them count. (The memory planner of the
buffer level gives the planned peak; this is the strategy-level figure the training
strategies budget with.)

Per parameter, forward FLOPs are those of the ops that read it (its layer), backward
FLOPs those of the backward ops that only its update needs (its weight gradient);
input-gradient work shared by several parameters counts only in the total.

A parameter updated only at some channels (`train.channels`, see
`edge_opt.ir.channels`) counts what its update really touches: its gradient bytes
are those of the optimizer op's gradient operand, its optimizer state has the restricted
shape, and `trained_params` counts the trained channels' elements only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    i1,
)
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue

from edge_opt.dialects import nn, train
from edge_opt.dialects.train import STATE_OF_ATTR, is_optimizer_state
from edge_opt.ir.cost import flops, numel
from edge_opt.ir.memory_passes import format_memory_passes
from edge_opt.ir.memory_passes import records as memory_pass_records
from edge_opt.support.dtypes import numpy_dtype

ATTENTION_FUSION_ATTR = "edge_opt.attention_fusion"
"""Module attribute where `fuse-attention-weights` records its decisions: an array of
dictionaries, one per `nn.attention` and side (see `attention_fusion`)."""

_LOSSES = (train.CrossEntropyOp, train.MseOp)
_LOSS_GRADS = (train.CrossEntropyGradOp, train.MseGradOp)
_OPTIMIZERS = (train.SgdOp, train.SgdMomentumOp, train.AdamOp, train.LinearGradWeightSgdOp,
               train.Conv2dGradWeightSgdOp)


@dataclass
class ParamReport:
    name: str
    shape: list[int]
    dtype: str
    trainable: bool
    params: int
    trained_params: int
    """Elements the training step updates: `params`, or the trained channels' elements
    of a channel-restricted parameter; 0 if it does not train."""
    bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    flops_forward: int
    flops_backward: int
    flops_optimizer: int


@dataclass
class Report:
    pipeline: str | None
    trainable_params: int
    total_params: int
    parameter_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    flops_forward: int
    flops_loss: int
    flops_backward: int
    flops_optimizer: int
    saved_activation_bytes: int
    backward_memory_bytes: int
    parameters: list[ParamReport] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Sections later stages add (e.g. `memory`)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def _function(module: ModuleOp, name: str) -> func.FuncOp | None:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    return None


def _itemsize(param: nn.ParamOp) -> int:
    return numpy_dtype(param.type.element_type).itemsize


def micro_batches(function: func.FuncOp) -> list[list[Operation]]:
    """The ops of a training function per micro-batch (`accumulate=k`: each runs its
    forward, loss and backward in turn). A micro-batch starts with the `nn.slice` of a
    function argument that follows a loss, or whose sweep and micro-batch
    (`train.sweep`, `train.micro_batch`: exact batch statistics) differ from the
    previous slice's; without accumulation there is one."""
    segments: list[list[Operation]] = [[]]
    has_loss = False
    tag: tuple[Attribute | None, Attribute | None] | None = None
    for op in function.body.block.ops:
        if isinstance(op, nn.SliceOp) and isinstance(op.input, BlockArgument):
            sliced = (op.attributes.get(train.SWEEP_ATTR),
                      op.attributes.get(train.MICRO_BATCH_ATTR))
            if has_loss or (tag is not None and sliced != tag):
                segments.append([])
                has_loss = False
            tag = sliced
        has_loss = has_loss or isinstance(op, _LOSSES)
        segments[-1].append(op)
    return segments


def batch_statistics_sweeps(function: func.FuncOp) -> int:
    """The sweeps over the micro-batches of a step with exact batch statistics (the
    distinct `train.sweep` values of its slices; 0 without)."""
    return len({op.attributes[train.SWEEP_ATTR] for op in function.body.block.ops
                if train.SWEEP_ATTR in op.attributes})


def training_phases(function: func.FuncOp) -> dict[str, list[Operation]]:
    """The ops of a training function by phase (see the module docstring), those of
    every micro-batch together."""
    phases = _phases([])
    for segment in micro_batches(function):
        for phase, ops in _phases(segment).items():
            phases[phase] += ops
    return phases


def _phases(ops: list[Operation]) -> dict[str, list[Operation]]:
    phases: dict[str, list[Operation]] = {
        "forward": [], "loss": [], "backward": [], "optimizer": []
    }
    phase = "forward"
    for op in ops:
        if isinstance(op, _LOSSES) or (phase == "forward" and isinstance(op, _LOSS_GRADS)):
            phase = "loss"  # a sweep for batch statistics has no loss, only its gradient
        elif phase == "loss" and not isinstance(op, _LOSS_GRADS):
            phase = "backward"
        if isinstance(op, (*_OPTIMIZERS, train.ScatterOp, train.StoreOp)):
            phases["optimizer"].append(op)
        else:
            phases[phase].append(op)
    return phases


def _readers(ops: list[Operation]) -> dict[str, list[Operation]]:
    """For each parameter, the ops of `ops` that compute on it (through param-only
    chains such as a transposed weight)."""
    sources: dict[SSAValue, set[str]] = {}
    readers: dict[str, list[Operation]] = {}
    for op in ops:
        if isinstance(op, nn.LoadOp):
            sources[op.result] = {op.param.string_value()}
            continue
        read = set().union(*(sources.get(o, set()) for o in op.operands))
        if op.operands and all(o in sources for o in op.operands):
            for r in op.results:
                sources[r] = read
            continue
        for name in read:
            readers.setdefault(name, []).append(op)
    return readers


def exclusive_owner(
    ops: list[Operation], params: dict[str, nn.ParamOp]
) -> dict[Operation, str | None]:
    """For each backward/optimizer op, the one parameter whose update alone needs it
    (None if several updates, or none, need it); a store into optimizer state counts
    for the parameter that state belongs to."""
    owner: dict[Operation, str | None] = {}
    for op in reversed(ops):
        if isinstance(op, train.StoreOp):
            stored = params[op.param.string_value()]
            ref = stored.attributes.get(STATE_OF_ATTR)
            owner[op] = (
                ref.string_value() if isinstance(ref, SymbolRefAttr)
                else None if is_optimizer_state(stored) else stored.sym_name.data
            )
            continue
        users = {owner.get(use.operation) for r in op.results for use in r.uses}
        owner[op] = users.pop() if len(users) == 1 else None
    return owner


def _updated_params(ops: list[Operation], params: dict[str, nn.ParamOp]) -> set[str]:
    """Model parameters (not optimizer state) that the training step stores."""
    return {
        op.param.string_value()
        for op in ops
        if isinstance(op, train.StoreOp)
        and not is_optimizer_state(params[op.param.string_value()])
    }


def _optimizer_updates(
    ops: list[Operation], owner: dict[Operation, str | None]
) -> dict[str, Operation]:
    """The optimizer op that updates each parameter (by the store it feeds)."""
    updates: dict[str, Operation] = {}
    for op in ops:
        name = owner.get(op)
        if isinstance(op, _OPTIMIZERS) and name is not None:
            updates[name] = op
    return updates


def saved_activation_bytes(phases: dict[str, list[Operation]]) -> int:
    """Bytes of the forward values the backward reads (what training must keep from the
    forward pass; parameters and constants are not counted, they persist anyway)."""
    produced = {
        r for op in phases["forward"] if not isinstance(op, (nn.LoadOp, nn.ConstantOp))
        for r in op.results
    }
    read = {
        o for op in phases["loss"] + phases["backward"] + phases["optimizer"]
        for o in op.operands if o in produced
    }
    return sum(numel(v) * _value_itemsize(v) for v in read)


def _value_itemsize(value: SSAValue) -> int:
    assert isinstance(value.type, TensorType)
    return numpy_dtype(value.type.element_type).itemsize


def _plain(attr: Attribute) -> Any:
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, IntegerAttr):
        value = attr.value.data
        return bool(value) if attr.type == i1 else value
    raise NotImplementedError(f"no plain form of {attr}")


def attention_fusion(module: ModuleOp) -> list[dict[str, Any]] | None:
    """The decisions `fuse-attention-weights` recorded on `module` (op, function,
    part, objective, `macs_unfused`, `macs_fused`, `params_unfused`, `params_fused`,
    fused, reason), or None if it did not run."""
    records = module.attributes.get(ATTENTION_FUSION_ATTR)
    if not isinstance(records, ArrayAttr):
        return None
    return [
        {key: _plain(value) for key, value in record.data.items()}
        for record in records.data
        if isinstance(record, DictionaryAttr)
    ]


def build_report(module: ModuleOp, pipeline: str | None = None) -> Report:
    params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
    step = _function(module, "train_step")
    if step is not None:
        phases = training_phases(step)
    else:
        forward = _function(module, "forward")
        ops = list(forward.body.block.ops) if forward is not None else []
        phases = {"forward": ops, "loss": [], "backward": [], "optimizer": []}
    trained = _updated_params(phases["optimizer"], params)
    readers = _readers(phases["forward"])
    backward_ops = phases["backward"] + phases["optimizer"]
    owner = exclusive_owner(backward_ops, params)
    updates = _optimizer_updates(phases["optimizer"], owner)
    state_bytes: dict[str, int] = {}
    for op in params.values():
        ref = op.attributes.get(STATE_OF_ATTR)
        if isinstance(ref, SymbolRefAttr):
            owned = ref.string_value()
            state_bytes[owned] = state_bytes.get(owned, 0) + op.type.element_count() * _itemsize(op)
    model_params = [op for op in params.values() if not is_optimizer_state(op)]
    rows = []
    for op in model_params:
        name = op.sym_name.data
        count = op.type.element_count()
        size = count * _itemsize(op)
        trains = name in trained
        # The optimizer reads the gradient (and the value) of what it updates: for a
        # channel-restricted parameter, the trained channels only.
        update = updates.get(name)
        trained_count = (
            0 if not trains else numel(update.operands[0]) if update is not None
            else count
        )
        gradient = (
            0 if not trains
            else numel(update.operands[1]) * _itemsize(op) if update is not None
            else size
        )
        rows.append(ParamReport(
            name=name,
            shape=list(op.type.get_shape()),
            dtype=str(op.type.element_type),
            trainable=trains,
            params=count,
            trained_params=trained_count,
            bytes=size,
            gradient_bytes=gradient,
            optimizer_state_bytes=state_bytes.get(name, 0),
            flops_forward=sum(flops(o) for o in readers.get(name, [])),
            flops_backward=sum(
                flops(o) for o in phases["backward"] if owner.get(o) == name
            ),
            flops_optimizer=sum(
                flops(o) for o in phases["optimizer"] if owner.get(o) == name
            ),
        ))
    saved = (
        max(saved_activation_bytes(_phases(ops)) for ops in micro_batches(step))
        if step is not None else saved_activation_bytes(phases)
    )
    total_state = sum(
        op.type.element_count() * _itemsize(op)
        for op in params.values()
        if is_optimizer_state(op)
    )
    report = Report(
        pipeline=pipeline,
        trainable_params=sum(r.trained_params for r in rows),
        total_params=sum(r.params for r in rows),
        parameter_bytes=sum(r.bytes for r in rows),
        gradient_bytes=sum(r.gradient_bytes for r in rows),
        optimizer_state_bytes=total_state,
        flops_forward=sum(flops(o) for o in phases["forward"]),
        flops_loss=sum(flops(o) for o in phases["loss"]),
        flops_backward=sum(flops(o) for o in phases["backward"]),
        flops_optimizer=sum(flops(o) for o in phases["optimizer"]),
        saved_activation_bytes=saved,
        backward_memory_bytes=saved + sum(r.gradient_bytes for r in rows) + total_state,
        parameters=rows,
    )
    fusion = attention_fusion(module)
    if fusion is not None:
        report.extra["attention_fusion"] = fusion
    memory_passes = memory_pass_records(module)
    if memory_passes is not None:
        report.extra["memory_passes"] = memory_passes
    sweeps = batch_statistics_sweeps(step) if step is not None else 0
    if sweeps:
        report.extra["batch_statistics_sweeps"] = sweeps
    return report


# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------


def _n(value: int) -> str:
    return f"{value:,}"


def format_report(report: Report) -> str:
    header = ("parameter", "shape", "trains", "params", "grad B", "optim B",
              "fwd FLOPs", "bwd FLOPs")
    lines = [header]
    for r in report.parameters:
        trains = (
            "" if not r.trainable else "yes" if r.trained_params == r.params
            else f"{r.trained_params // (r.params // r.shape[0])}/{r.shape[0]} ch"
        )
        lines.append((
            r.name, "x".join(map(str, r.shape)) or "scalar", trains,
            _n(r.params), _n(r.gradient_bytes), _n(r.optimizer_state_bytes),
            _n(r.flops_forward), _n(r.flops_backward),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for i, line in enumerate(lines):
        cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))]
        text.append("  ".join(cells).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    text.append("")
    text.append(f"pipeline              {report.pipeline or '(none)'}")
    for label, value in _summary_rows(report):
        text.append(f"{label:<22}{value}")
    if "batch_statistics_sweeps" in report.extra:
        text.append(f"{'micro-batch sweeps':<22}{report.extra['batch_statistics_sweeps']}"
                    " (exact batch statistics)")
    if "attention_fusion" in report.extra:
        text += ["", *format_attention_fusion(report.extra["attention_fusion"])]
    if "memory_passes" in report.extra:
        text += ["", *format_memory_passes(report.extra["memory_passes"])]
    return "\n".join(text) + "\n"


def format_attention_fusion(records: list[dict[str, Any]]) -> list[str]:
    """The "attention weight fusion" table: per op and side, MACs and params unfused
    -> fused, and whether it was fused (with the reason)."""
    header = ("op", "part", "MACs unfused -> fused", "params unfused -> fused", "fused")
    lines = [header]
    for r in records:
        lines.append((
            f"%{r['op']} @{r['function']}", r["part"].upper(),
            f"{_n(r['macs_unfused'])} -> {_n(r['macs_fused'])}",
            f"{_n(r['params_unfused'])} -> {_n(r['params_fused'])}",
            f"{'yes' if r['fused'] else 'no'} ({r['reason']})",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    objectives = sorted({r["objective"] for r in records})
    text = [f"attention weight fusion (objective {', '.join(objectives)})"]
    for i, line in enumerate(lines):
        cells = [c.rjust(w) if j in (2, 3) else c.ljust(w)
                 for j, (c, w) in enumerate(zip(line, widths))]
        text.append("  ".join(cells).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    return text


def _summary_rows(report: Report) -> list[tuple[str, str]]:
    return [
        ("trainable params", f"{_n(report.trainable_params)} of {_n(report.total_params)}"),
        ("parameter bytes", _n(report.parameter_bytes)),
        ("gradient bytes", _n(report.gradient_bytes)),
        ("optimizer bytes", _n(report.optimizer_state_bytes)),
        ("saved activations B", _n(report.saved_activation_bytes)),
        ("backward memory B", _n(report.backward_memory_bytes)),
        ("forward FLOPs", _n(report.flops_forward)),
        ("loss FLOPs", _n(report.flops_loss)),
        ("backward FLOPs", _n(report.flops_backward)),
        ("optimizer FLOPs", _n(report.flops_optimizer)),
    ]


def _memory_rows(report: Report) -> list[tuple[str, str]]:
    rows = []
    for level, f in sorted(report.extra.get("memory", {}).items()):
        rows.append((f"{level} arena peak B", _n(f["peak_bytes"])))
        rows.append((f"{level} lower bound B", _n(f["lower_bound_bytes"])))
        rows.append((f"{level} persistent B", _n(f["persistent_bytes"])))
        if "fits" in f:
            rows.append((f"{level} fits {report.extra.get('soc', '')}",
                         "yes" if f["fits"] else "NO"))
    return rows


def format_comparison(reports: list[Report]) -> str:
    """The totals of several strategies side by side, one column each."""
    def rows(r: Report) -> list[tuple[str, str]]:
        return _summary_rows(r) + _memory_rows(r)

    columns = [[r.pipeline or "(none)"] + [v for _, v in rows(r)] for r in reports]
    labels = [""] + [label for label, _ in rows(reports[0])]
    widths = [max(len(c) for c in col) for col in columns]
    label_width = max(len(label) for label in labels)
    text = []
    for i, label in enumerate(labels):
        cells = [col[i].rjust(w) for col, w in zip(columns, widths)]
        text.append(f"{label:<{label_width}}  " + "  ".join(cells))
    return "\n".join(text) + "\n"
