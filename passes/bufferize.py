"""`bufferize`: tensor-level functions -> buffer-level kernel calls.

Every function becomes destination-passing code on `memref`s: arguments and results are
buffers of the activation level, each compute op becomes its `kernel.*` op writing a
buffer (`kernel.alloc`), parameters are their persistent buffers (`kernel.get_param`),
constants read-only buffers, and reshape/squeeze/unsqueeze become `kernel.view`s (no copy).

In place where legal:
- an element-wise kernel (and a batch norm, an optimizer update) writes over an input
  buffer that dies at that op, when the kernel allows it (`KernelOp.INPLACE`);
- the value a `train.store` writes into parameter `@p` is computed directly into `@p`'s
  buffer when nothing reads `@p`'s old value (or a view of it) after the op that
  computes it and `@p` is stored once (an optimizer update writes the parameter buffer
  in place); otherwise it is copied there, after copying out the old value if it is
  still read later.

A fused weight update (`fuse-weight-updates`) gets a workspace buffer of `chunk_rows`
rows of its weight as its last output (`KernelOp.WORKSPACE`).

The buffer level has no attention kernel: an `nn.attention` must be rewritten into
primitive ops by `lower-attention` first (the lowering stage does; `bufferize` refuses
one, naming it). A training step's attention backward is already made of primitive ops.

Options: `level` (memory level of activations and gradients, default `L2`), `weights`
(level of parameters and optimizer state, default `L2`). Parameters record their level
in the `kernel.level` attribute.

Example: `%y = nn.relu %x : tensor<4xf32>` where `%x` dies becomes
`kernel.relu ins(%x : memref<4xf32, "L2">) outs(%x : memref<4xf32, "L2">)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr, TensorType
from xdsl.ir import Block, Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, nn, train
from edge_opt.dialects.kernel import LEVEL_ATTR, buffer_type
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support.hints import symbol_hint

_VIEWS = (nn.ReshapeOp, nn.SqueezeOp, nn.UnsqueezeOp)

Level = Literal["L1", "L2", "L3"]


@dataclass(frozen=True)
class BufferizePass(EdgeOptPass):
    """Lowers every function to the buffer level (see the module docstring)."""

    name = "bufferize"

    level: Level = "L2"
    weights: Level = "L2"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for attention in op.walk():
            if isinstance(attention, nn.AttentionOp):
                named = f" %{attention.result.name_hint}" if attention.result.name_hint else ""
                raise PassFailedException(
                    f"bufferize: nn.attention{named} has no kernel; run lower-attention "
                    "first (the lowering stage of --emit c and --report does)"
                )
        params = {p.sym_name.data: p for p in op.ops if isinstance(p, nn.ParamOp)}
        for param in params.values():
            param.attributes[LEVEL_ATTR] = StringAttr(self.weights)
        for function in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            if _is_bufferized(function):
                raise PassFailedException(
                    f"bufferize: @{function.sym_name.data} is already at the buffer level"
                )
            FunctionBufferizer(function, params, self.level, self.weights).run()


def _is_bufferized(function: func.FuncOp) -> bool:
    return any(not isinstance(t, TensorType) for t in function.function_type.inputs.data)


class FunctionBufferizer:
    """Rewrites one function in place (a new body replaces the old one)."""

    def __init__(self, function: func.FuncOp, params: dict[str, nn.ParamOp],
                 level: str, weights: str):
        self.function = function
        self.params = params
        self.level = level
        self.weights = weights
        self.ops = list(function.body.block.ops)
        self.index = {op: i for i, op in enumerate(self.ops)}
        self.block = Block()
        self.buffers: dict[SSAValue, SSAValue] = {}
        self.owned: set[SSAValue] = set()
        """Buffers this function allocated (the ones an op may write over)."""
        self.param_buffers: dict[str, SSAValue] = {}
        self.redirect = self._store_targets()

    # ----------------------------------------------------------------------------------

    def run(self) -> None:
        old = self.function.body.block
        for arg in old.args:
            new = self.block.insert_arg(self._type(arg), len(self.block.args))
            new.name_hint = arg.name_hint
            self.buffers[arg] = new
        for op in self.ops:
            self._lower(op)
        results = [a.type for a in self.block.last_op.operands] if self.block.last_op else []
        self.function.body.detach_block(old)
        self.function.body.add_block(self.block)
        old.erase(safe_erase=False)
        self.function.function_type = func.FunctionType.from_lists(
            [a.type for a in self.block.args], results
        )

    def _type(self, value: SSAValue):
        assert isinstance(value.type, TensorType), value.type
        return buffer_type(value.type, self.level)

    def _emit(self, op: Operation) -> Operation:
        self.block.add_op(op)
        return op

    def _lower(self, op: Operation) -> None:
        if isinstance(op, func.ReturnOp):
            self._emit(func.ReturnOp(*[self.buffers[o] for o in op.operands]))
        elif isinstance(op, nn.LoadOp):
            self.buffers[op.result] = self._param_buffer(op.param.string_value())
        elif isinstance(op, nn.ConstantOp):
            const = self._emit(kernel.ConstantOp(op.value, self.level, op.result.type))
            self.buffers[op.result] = const.results[0]
        elif isinstance(op, _VIEWS):
            source = self.buffers[op.operands[0]]
            shape = op.results[0].type.get_shape()  # type: ignore[attr-defined]
            viewed = self._emit(kernel.ViewOp(source, shape)).results[0]
            viewed.name_hint = op.results[0].name_hint
            self.buffers[op.results[0]] = viewed
        elif isinstance(op, train.StoreOp):
            self._store(op)
        elif type(op) in kernel.KERNEL_OF:
            self._compute(op)
        else:
            raise PassFailedException(
                f"bufferize: no kernel for {op.name} in @{self.function.sym_name.data}"
            )

    def _param_buffer(self, name: str) -> SSAValue:
        if name not in self.param_buffers:
            param = self.params[name]
            get = self._emit(kernel.GetParamOp(name, buffer_type(param.type, self.weights)))
            get.results[0].name_hint = symbol_hint(name)
            self.param_buffers[name] = get.results[0]
        return self.param_buffers[name]

    def _compute(self, op: Operation) -> None:
        kernel_op = kernel.KERNEL_OF[type(op)]
        inputs = [self.buffers[o] for o in op.operands]
        outputs = []
        taken: set[SSAValue] = set()
        for i, result in enumerate(op.results):
            target = self.redirect.get(result)
            if target is not None:
                buffer = self._param_buffer(target)
            else:
                buffer = self._reusable_input(op, kernel_op, i, taken)
                if buffer is None:
                    alloc = self._emit(kernel.AllocOp(self._type(result)))
                    buffer = alloc.results[0]
                    self.owned.add(buffer)
            buffer_hint = result.name_hint
            if buffer_hint is not None and buffer.name_hint is None:
                buffer.name_hint = buffer_hint
            taken.add(buffer)
            outputs.append(buffer)
            self.buffers[result] = buffer
        if kernel_op.WORKSPACE:
            outputs.append(self._workspace(op))
        properties = dict(op.properties)
        properties.pop("operandSegmentSizes", None)
        self._emit(kernel_op(inputs, outputs, properties))

    def _workspace(self, op: Operation) -> SSAValue:
        """The scratch buffer of a fused weight update: `chunk_rows` rows of its
        weight, allocated (and so planned) like any buffer, live for that op alone."""
        result = op.results[0].type
        assert isinstance(result, TensorType)
        rows = op.properties["chunk_rows"].value.data  # type: ignore[attr-defined]
        shape = (rows, *result.get_shape()[1:])
        alloc = self._emit(kernel.AllocOp(buffer_type(TensorType(result.element_type, shape),
                                                      self.level)))
        alloc.results[0].name_hint = "workspace"
        self.owned.add(alloc.results[0])
        return alloc.results[0]

    def _reusable_input(self, op: Operation, kernel_op: type[kernel.KernelOp],
                        output: int, taken: set[SSAValue]) -> SSAValue | None:
        """An input buffer the output may overwrite: the kernel allows it, the input
        value dies here, the buffer is one we allocated, with the output's type."""
        for j in kernel_op.INPLACE.get(output, ()):
            value = op.operands[j]
            buffer = self.buffers[value]
            if (
                buffer in self.owned
                and buffer not in taken
                and value.type == op.results[output].type
                and self._dies_at(value, op)
                and not self._aliased_later(buffer, op)
            ):
                return buffer
        return None

    def _dies_at(self, value: SSAValue, op: Operation) -> bool:
        position = self.index[op]
        return all(self.index[use.operation] <= position for use in value.uses)

    def _aliased_later(self, buffer: SSAValue, op: Operation) -> bool:
        """Whether another tensor value stored in this buffer (itself, or a view of it,
        of a view of it, ...) is used after `op`."""
        return bool(self._values_in(buffer, self.index[op]))

    def _values_in(self, buffer: SSAValue, position: int) -> list[SSAValue]:
        """The tensor values lowered so far whose storage is `buffer` (directly or
        through a chain of views) and that are used after `position`."""
        return [
            value
            for value, buf in self.buffers.items()
            if _storage(buf) is buffer
            and any(self.index[u.operation] > position for u in value.uses)
        ]

    # ----------------------------------------------------------------------------------

    def _store_targets(self) -> dict[SSAValue, str]:
        """Values that can be computed straight into the parameter they are stored to:
        nothing reads the parameter's old value after the op that computes them."""
        targets: dict[SSAValue, str] = {}
        stores: dict[str, int] = {}
        for op in self.ops:
            if isinstance(op, train.StoreOp):
                name = op.param.string_value()
                stores[name] = stores.get(name, 0) + 1
        for op in self.ops:
            if not isinstance(op, train.StoreOp):
                continue
            if stores[op.param.string_value()] > 1:
                continue  # an earlier value would be overwritten early: copy instead
            value, name = op.value, op.param.string_value()
            producer = value.owner
            if not isinstance(producer, Operation) or type(producer) not in kernel.KERNEL_OF:
                continue
            if value in targets or not self._old_value_dead(name, producer, value):
                continue
            targets[value] = name
        return targets

    def _old_value_dead(self, name: str, producer: Operation, value: SSAValue) -> bool:
        position = self.index[producer]
        kernel_op = kernel.KERNEL_OF[type(producer)]
        output = list(producer.results).index(value)
        for op in self.ops:
            if not (isinstance(op, nn.LoadOp) and op.param.string_value() == name):
                continue
            # The old value, and every view of it (reshapes of the parameter are views
            # of its buffer, overwritten with it).
            for old in _with_views(op.result):
                for use in old.uses:
                    user = use.operation
                    if self.index[user] > position:
                        return False
                    if user is producer and (
                        old is not op.result
                        or use.index not in kernel_op.INPLACE.get(output, ())
                    ):
                        return False
        return True

    def _store(self, op: train.StoreOp) -> None:
        name = op.param.string_value()
        if self.redirect.get(op.value) == name:
            return  # computed in place into the parameter's buffer
        target = self._param_buffer(name)
        self._preserve_old_value(target, op)
        self._emit(kernel.CopyOp(self.buffers[op.value], target))

    def _preserve_old_value(self, target: SSAValue, store: train.StoreOp) -> None:
        """Values in the parameter's buffer (its old value, views of it) that are still
        read after `store` move to a snapshot copied out before the buffer is
        overwritten."""
        old = [v for v in self._values_in(target, self.index[store]) if v != store.value]
        if not old:
            return
        assert isinstance(target.type, MemRefType)
        snapshot = self._emit(kernel.AllocOp(target.type)).results[0]
        snapshot.name_hint = f"{target.name_hint or 'param'}_old"
        self.owned.add(snapshot)
        self._emit(kernel.CopyOp(target, snapshot))
        for value in old:
            if self.buffers[value] is target:
                self.buffers[value] = snapshot
            else:
                shape = self.buffers[value].type.get_shape()  # type: ignore[attr-defined]
                viewed = self._emit(kernel.ViewOp(snapshot, shape)).results[0]
                viewed.name_hint = value.name_hint
                self.buffers[value] = viewed


def _storage(buffer: SSAValue) -> SSAValue:
    """The buffer a view (of a view ...) reads and writes."""
    while isinstance(buffer.owner, kernel.ViewOp):
        buffer = buffer.owner.source
    return buffer


def _with_views(value: SSAValue) -> list[SSAValue]:
    """`value` and the tensor values that bufferize makes views of it, transitively."""
    result = [value]
    for use in value.uses:
        if isinstance(use.operation, _VIEWS):
            result.extend(_with_views(use.operation.results[0]))
    return result
