"""Channel-restricted parameter updates: the attributes that say which channels train.

A trainable `nn.param` that carries the discardable attributes
`train.channels = array<i64: ...>` (sorted, unique) and `train.channel_axis = 0 : i64` is
updated only at those channels: `autodiff` computes its gradient for them alone (the
output gradient is gathered to those channels before the weight-gradient op, so that op
does k/O of the work), the optimizer updates the gathered channels (its state has their
shape) and `train.scatter` writes them back. This saves weight-gradient bytes, optimizer
state and weight-gradient FLOPs, not the saved input activation.

The restriction is defined for the weight and the bias of `nn.linear` and of
`nn.conv2d` with `groups == 1`, whose axis 0 is the output channels; a parameter read by
anything else cannot be restricted. `sparse-update` sets the attributes (its
channel-level selection); this module reads, writes and checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, TensorType, i64
from xdsl.ir import Use
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.dialects.train import CHANNEL_AXIS_ATTR, CHANNELS_ATTR


@dataclass(frozen=True)
class ChannelRestriction:
    """The channels (indices along `axis`) of a parameter that train."""

    channels: tuple[int, ...]
    axis: int = 0

    def restrict(self, type: TensorType) -> TensorType:
        """`type` with the channel axis cut to the trained channels."""
        shape = list(type.get_shape())
        shape[self.axis] = len(self.channels)
        return TensorType(type.element_type, shape)


def restriction_of(param: nn.ParamOp) -> ChannelRestriction | None:
    """The parameter's restriction (None without the attributes); malformed attributes
    raise `PassFailedException` naming the parameter and the rule."""
    name = f"@{param.sym_name.data}"
    channels = param.attributes.get(CHANNELS_ATTR)
    axis = param.attributes.get(CHANNEL_AXIS_ATTR)
    if channels is None and axis is None:
        return None
    if channels is None or axis is None:
        present, absent = (
            (CHANNELS_ATTR, CHANNEL_AXIS_ATTR) if axis is None
            else (CHANNEL_AXIS_ATTR, CHANNELS_ATTR)
        )
        raise PassFailedException(f"{name} has {present} but no {absent}")
    if not (
        isinstance(channels, DenseArrayBase) and channels.elt_type == i64
    ) or not isinstance(axis, IntegerAttr):
        raise PassFailedException(
            f"{name}: {CHANNELS_ATTR} must be an array<i64: ...> and "
            f"{CHANNEL_AXIS_ATTR} an integer"
        )
    values = tuple(channels.get_values())
    axis_value = axis.value.data
    shape = param.type.get_shape()
    if axis_value != 0 or not shape:
        raise PassFailedException(
            f"{name}: {CHANNEL_AXIS_ATTR} is {axis_value}; only axis 0 (the output "
            "channels of a linear or convolution weight and bias) is supported"
        )
    if not values or any(b <= a for a, b in pairwise(values)):
        raise PassFailedException(
            f"{name}: {CHANNELS_ATTR} must be non-empty, sorted and unique, got "
            f"{list(values)}"
        )
    if values[0] < 0 or values[-1] >= shape[0]:
        raise PassFailedException(
            f"{name}: {CHANNELS_ATTR} must lie in [0, {shape[0]}) (axis 0 of "
            f"{param.type}), got {list(values)}"
        )
    return ChannelRestriction(values, axis_value)


def set_restriction(param: nn.ParamOp, channels: Sequence[int] | None) -> None:
    """Restricts `param`'s updates to `channels` of axis 0, or lifts the restriction
    (None)."""
    if channels is None:
        param.attributes.pop(CHANNELS_ATTR, None)
        param.attributes.pop(CHANNEL_AXIS_ATTR, None)
        return
    param.attributes[CHANNELS_ATTR] = DenseArrayBase.from_list(i64, sorted(channels))
    param.attributes[CHANNEL_AXIS_ATTR] = IntegerAttr(0, 64)


def unsupported_use(use: Use) -> str | None:
    """Why this use of a parameter's value prevents a channel restriction, or None if
    it allows one (the weight or bias of `nn.linear`, of `nn.conv2d` with
    `groups == 1`)."""
    op = use.operation
    if isinstance(op, nn.LinearOp) and use.index in (1, 2):
        return None
    if isinstance(op, nn.Conv2dOp) and use.index in (1, 2):
        if op.groups.value.data == 1:
            return None
        return f"{_label(op)} (groups = {op.groups.value.data})"
    return _label(op)


def _label(op) -> str:
    hint = op.results[0].name_hint if op.results else None
    return f"{op.name} %{hint}" if hint else op.name


def _uses(function: func.FuncOp, name: str) -> list[Use]:
    return [
        use
        for op in function.body.block.ops
        if isinstance(op, nn.LoadOp) and op.param.string_value() == name
        for use in op.result.uses
    ]


def output_channels(function: func.FuncOp, param: nn.ParamOp) -> int | None:
    """The parameter's output-channel count if every use of it in `function` allows a
    channel restriction (and it has some), else None."""
    uses = _uses(function, param.sym_name.data)
    if not uses or any(unsupported_use(u) is not None for u in uses):
        return None
    return param.type.get_shape()[0]


def check_uses(function: func.FuncOp, param: nn.ParamOp) -> None:
    """Raises `PassFailedException` naming the first op of `function` that reads the
    (restricted) parameter in a way a channel restriction does not support."""
    for use in _uses(function, param.sym_name.data):
        reason = unsupported_use(use)
        if reason is not None:
            raise PassFailedException(
                f"@{param.sym_name.data} is updated by channel ({CHANNELS_ATTR}) but "
                f"{reason} reads it; only the weight or bias of nn.linear and of "
                "nn.conv2d with groups = 1 can be"
            )
