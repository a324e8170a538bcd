"""`@forward` on a micro-batch, for gradient accumulation (`accumulate=k`).

A training step with `accumulate=k` runs the batch of N samples as k micro-batches of
N / k: the forward ops on a micro-batch, its loss and backward, the gradients summed
over the micro-batches, one update. That equals the step on the whole batch only if no
op couples samples, so `micro_batch_forward` rebuilds `@forward` at the micro-batch
size op by op and rejects, naming it, every op that mixes the batch axis:

- the batch axis is axis 0 of every input (all inputs have N there) and of every value
  computed from one; parameters and constants are not batched;
- per-sample ops (convolutions, linear, pools, layer / group / inference batch norm,
  attention, element-wise ops) take the batch in operand 0 (element-wise and concat: in
  any operand, each of the result's rank; a broadcast unbatched operand must not have
  N rows);
- shape and axis ops must keep axis 0: no reduction, softmax, concat, gather, pad or
  slice along it, transposes keep it first, reshapes and broadcasts keep N rows;
- a training-mode batch norm (batch statistics) couples samples, unless the caller
  computes its statistics over the whole batch (`batch_statistics`, see
  `edge_opt.autodiff.batch_statistics`).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import PassFailedException, VerifyException

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import BinaryElementwiseOp, UnaryElementwiseOp
from edge_opt.support import shapes

WEIGHTED = (
    nn.LinearOp, nn.Conv2dOp, nn.ConvTranspose2dOp, nn.LayerNormOp, nn.GroupNormOp,
    nn.BatchNormOp, nn.AttentionOp,
)
"""Per-sample ops whose other operands (weights, statistics) must not be batched."""

PER_SAMPLE = (UnaryElementwiseOp, nn.MaxPool2dOp, nn.AvgPool2dOp, nn.GlobalAvgPoolOp)
"""Per-sample ops of one operand."""


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


def _name(op: Operation) -> str:
    hint = op.results[0].name_hint if op.results else None
    return f"{op.name} %{hint}" if hint else op.name


class Coupling(PassFailedException):
    """`@forward` does not treat the samples of a batch one by one: an op couples them,
    an input is not a batch, or an output is not computed per sample."""


class MicroBatchForward:
    """Rebuilds `forward` (batch `batch`) at batch `micro` (see the module docstring)."""

    def __init__(self, forward: func.FuncOp, batch: int, micro: int, why: str,
                 batch_statistics: bool = False):
        self.forward = forward
        self.batch_statistics = batch_statistics
        self.batch = batch
        self.micro = micro
        self.why = why
        self.mapping: dict[SSAValue, SSAValue] = {}
        self.batched: set[SSAValue] = set()

    def fail(self, op: Operation, what: str) -> Coupling:
        return Coupling(
            f"{self.why}: {_name(op)} {what}, so it couples the samples of a batch and "
            f"micro-batches of {self.micro} would not compute the batch of {self.batch}"
        )

    def build(self) -> func.FuncOp:
        source = self.forward.body.block
        block = Block()
        for arg in source.args:
            shape = _shape(arg)
            if not shape or shape[0] != self.batch:
                raise Coupling(
                    f"{self.why}: input %{arg.name_hint or arg.index} has shape "
                    f"{list(shape)}, not the batch size {self.batch} first; every input "
                    "must be a batch"
                )
            new = block.insert_arg(self._rows(arg.type, self.micro), len(block.args))
            new.name_hint = arg.name_hint
            self.mapping[arg] = new
            self.batched.add(arg)
        for op in source.ops:
            if isinstance(op, func.ReturnOp):
                self._check_outputs(op)
                block.add_op(op.clone(value_mapper=self.mapping))
            else:
                block.add_op(self._rebuilt(op))
        return func.FuncOp(
            self.forward.sym_name.data,
            ([a.type for a in block.args], list(block.last_op.operand_types)),  # type: ignore[union-attr]
            Region(block),
        )

    def _rows(self, type: object, rows: int) -> TensorType:
        assert isinstance(type, TensorType)
        return TensorType(type.element_type, (rows, *type.get_shape()[1:]))

    def _check_outputs(self, op: func.ReturnOp) -> None:
        for value in op.arguments:
            if value not in self.batched:
                raise Coupling(
                    f"{self.why}: an output of @{self.forward.sym_name.data} is not "
                    "computed per sample (it does not depend on the inputs' batch axis)"
                )

    def _rebuilt(self, op: Operation) -> Operation:
        flags = [o in self.batched for o in op.operands]
        if not any(flags):
            for operand in op.operands:
                if operand.type != self.mapping[operand].type:
                    raise self.fail(op, "reads a value computed across the batch")
            return op.clone(value_mapper=self.mapping)
        self._check(op, flags)
        new = self._create(op)
        try:
            new.verify()
        except VerifyException as e:
            raise self.fail(op, f"does not hold at batch {self.micro} ({e})") from None
        for old, result in zip(op.results, new.results, strict=True):
            result.name_hint = old.name_hint
            self.mapping[old] = result
            self.batched.add(old)
        return new

    def _create(self, op: Operation) -> Operation:
        operands = [self.mapping[o] for o in op.operands]
        properties = dict(op.properties)
        if isinstance(op, nn.SliceOp):
            ends = list(op.ends.get_values())
            ends[0] = self.micro
            properties = nn.SliceOp.slice_properties(
                op.starts.get_values(), ends, op.steps.get_values()
            )
        for result in op.results:
            if not _shape(result) or _shape(result)[0] != self.batch:
                raise self.fail(op, f"gives {result.type}, without the batch first")
        return type(op).create(
            operands=operands,
            result_types=[self._rows(r.type, self.micro) for r in op.results],
            properties=properties,
            attributes=dict(op.attributes),
        )

    def _check(self, op: Operation, flags: Sequence[bool]) -> None:
        rank = len(_shape(op.results[0])) if op.results else 0
        if isinstance(op, BinaryElementwiseOp | nn.ConcatOp):
            self._check_aligned(op, flags, rank)
            if isinstance(op, nn.ConcatOp) and self._axis(op.axis.value.data, rank) == 0:
                raise self.fail(op, "concatenates along the batch axis")
            return
        if any(flags[1:]) and not isinstance(op, nn.MatmulOp):
            raise self.fail(op, "takes a batched value as a weight or statistic")
        if (isinstance(op, nn.BatchNormOp) and op.training is not None
                and not self.batch_statistics):
            raise self.fail(op, "normalises with batch statistics (training)")
        if isinstance(op, (*WEIGHTED, *PER_SAMPLE)):
            return
        problem = self._axis_problem(op, rank)
        if problem is not None:
            raise self.fail(op, problem)

    def _check_aligned(self, op: Operation, flags: Sequence[bool], rank: int) -> None:
        for operand, batched in zip(op.operands, flags, strict=True):
            shape = _shape(operand)
            if batched and len(shape) != rank:
                raise self.fail(op, "broadcasts a batched operand to a higher rank")
            if not batched and len(shape) == rank and shape[0] == self.batch != 1:
                raise self.fail(op, f"reads {operand.type}, whose {self.batch} rows are "
                                "not samples")

    def _axis(self, axis: int, rank: int) -> int:
        return shapes.normalize_axis(axis, rank)

    def _axis_problem(self, op: Operation, rank: int) -> str | None:
        """Why a shape, axis or matmul op mixes axis 0 (None: it keeps it)."""
        source_rank = len(_shape(op.operands[0]))
        if isinstance(op, nn.SoftmaxOp | nn.LogSoftmaxOp):
            return "normalises along the batch axis" if self._axis(
                op.axis.value.data, rank) == 0 else None
        if isinstance(op, nn.ReduceMeanOp | nn.ReduceSumOp):
            axes = {self._axis(a, source_rank) for a in op.axes.get_values()}
            return "reduces over the batch axis" if 0 in axes else None
        if isinstance(op, nn.TransposeOp):
            return None if op.perm.get_values()[0] == 0 else "moves the batch axis"
        if isinstance(op, nn.ReshapeOp | nn.BroadcastToOp):
            return None if _shape(op.results[0])[0] == self.batch else (
                "changes the number of rows")
        if isinstance(op, nn.PadOp):
            pads = op.pads.get_values()
            return "pads the batch axis" if pads[0] or pads[len(pads) // 2] else None
        if isinstance(op, nn.SliceOp):
            full = (op.starts.get_values()[0] == 0 and op.steps.get_values()[0] == 1
                    and op.ends.get_values()[0] >= self.batch)
            return None if full else "slices the batch axis"
        if isinstance(op, nn.GatherOp):
            return "gathers along the batch axis" if self._axis(
                op.axis.value.data, source_rank) == 0 else None
        if isinstance(op, nn.SqueezeOp | nn.UnsqueezeOp):
            axes = op.axes.get_values()
            rank_of_axes = rank if isinstance(op, nn.UnsqueezeOp) else source_rank
            return "squeezes or inserts the batch axis" if 0 in {
                self._axis(a, rank_of_axes) for a in axes} else None
        if isinstance(op, nn.MatmulOp):
            return self._matmul_problem(op)
        return "has no rule for micro-batches"

    def _matmul_problem(self, op: nn.MatmulOp) -> str | None:
        lhs, rhs = (o in self.batched for o in op.operands)
        lhs_rank, rhs_rank = len(_shape(op.lhs)), len(_shape(op.rhs))
        if lhs and lhs_rank == 2 and op.transpose_lhs is not None:
            return "contracts over the batch axis"
        if rhs and not (lhs and lhs_rank >= 3 and rhs_rank == lhs_rank):
            return "takes the batch as its right operand"
        return None


def micro_batch_forward(forward: func.FuncOp, micro: int, why: str,
                        batch_statistics: bool = False) -> func.FuncOp:
    """`forward` rebuilt at batch `micro` (its inputs' first dimension is the batch);
    `why` starts the error messages (e.g. "autodiff: accumulate=4"). With
    `batch_statistics`, training-mode batch norms are accepted (the caller gives them
    the whole batch's statistics)."""
    args = forward.body.block.args
    if not args:
        raise PassFailedException(f"{why}: @{forward.sym_name.data} has no input")
    batch = _shape(args[0])[0] if _shape(args[0]) else 0
    return MicroBatchForward(forward, batch, micro, why, batch_statistics).build()
