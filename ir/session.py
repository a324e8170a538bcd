"""Running a module: the one-line API for users and tests.

    from edge_opt.ir.session import run
    (logits,) = run(module, "forward", {"input": x})

`Session` keeps the parameter state between calls (a training step writes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    BytesAttr,
    DictionaryAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
)
from xdsl.interpreter import InterpretationError
from xdsl.ir import Attribute, BlockArgument, SSAValue

from edge_opt.dialects import dma, nn, tile, train
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, OFFSET_ATTR
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.ir.interpreters.dma import DmaMode, dma_state, set_dma_mode
from edge_opt.ir.interpreters.kernel import KernelFunctions, Memory, view
from edge_opt.ir.interpreters.nn import NnFunctions, ParamState
from edge_opt.support.dtypes import numpy_dtype, to_numpy
from edge_opt.support.errors import InputError
from edge_opt.support.train_numerics import check_labels

NAME_ATTR = "nn.name"

"""Argument/result attribute holding the graph-level name of a function input/output."""

Inputs = Sequence[np.ndarray] | Mapping[str, np.ndarray]


def get_function(module: ModuleOp, name: str) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    available = [op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)]
    raise InputError(
        f"the module has no function @{name} (it has: "
        f"{', '.join('@' + n for n in available) or 'none'})"
    )


def _names(attrs, count: int, hints: Sequence[str | None], prefix: str) -> list[str]:
    names = []
    for i in range(count):
        name = None
        if attrs is not None and NAME_ATTR in attrs.data[i].data:
            name = _name_text(attrs.data[i].data[NAME_ATTR])
        names.append(name or hints[i] or f"{prefix}{i}")
    return names


def _name_text(attr: Attribute) -> str:
    """The text of an `nn.name`. xDSL prints a non-ASCII string with byte escapes and
    parses it back as a `BytesAttr`: both are the same UTF-8 name."""
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, BytesAttr):
        try:
            return attr.data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    raise InputError(f"{NAME_ATTR} must be a UTF-8 string, not {attr}")


def input_names(function: func.FuncOp) -> list[str]:
    """Graph-level names of the inputs: the `nn.name` argument attribute, else the SSA
    name, else `arg<i>`."""
    args = function.body.block.args
    return _names(function.arg_attrs, len(args), [a.name_hint for a in args], "arg")


def output_names(function: func.FuncOp) -> list[str]:
    """Graph-level names of the outputs: the `nn.name` result attribute, else
    `output<i>`."""
    count = len(function.function_type.outputs.data)
    return _names(function.res_attrs, count, [None] * count, "output")


def params_of(module: ModuleOp) -> dict[str, nn.ParamOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}


def _check_array(
    what: str, array: np.ndarray, type: TensorType | MemRefType
) -> np.ndarray:
    array = np.asarray(array)
    expected = tuple(type.get_shape())
    if array.shape != expected:
        raise InputError(
            f"{what} has shape {list(array.shape)}, expected {list(expected)} ({type})"
        )
    dtype = numpy_dtype(type.element_type)
    if array.dtype != dtype:
        if not np.can_cast(array.dtype, dtype, "same_kind"):
            raise InputError(
                f"{what} has dtype {array.dtype}, expected {dtype} ({type})"
            )
        array = array.astype(dtype)
    return array


class Session:
    """A module plus its parameter values; `run` interprets one function.

    `params` overrides or supplies parameter values by name (e.g. from the model's
    `.npz`); parameters not given use their inline `nn.param` value. A function that
    stores parameters (a training step) updates `self.params`. `dma` is how DMA copies
    land (`edge_opt.ir.interpreters.dma`): at their start, or only at their wait.
    """

    def __init__(
        self, module: ModuleOp, params: Mapping[str, np.ndarray] | None = None,
        dma: DmaMode = "immediate",
    ):
        self.module = module
        declared = params_of(module)
        given = dict(params or {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise InputError(
                f"values given for parameters the module does not declare: "
                f"{', '.join(unknown)}"
            )
        self.params = ParamState()
        missing = []
        for name, op in declared.items():
            if name in given:
                self.params[name] = _check_array(
                    f"parameter @{name}", given[name], op.type
                )
            elif op.value is not None:
                self.params[name] = to_numpy(op.value)
            else:
                missing.append(name)
        if missing:
            raise InputError(
                f"{len(missing)} parameter(s) have no value: "
                f"{', '.join('@' + n for n in missing[:8])}"
                f"{' ...' if len(missing) > 8 else ''}; load the model's .npz or pass "
                "them in params"
            )
        self._interpreter = make_interpreter(module)
        self._interpreter.set_data(NnFunctions, "params", self.params)
        set_dma_mode(self._interpreter, dma)
        self._place_in_memory()

    def _place_in_memory(self) -> None:
        """For a planned module, memory as on the device: one arena per level for the
        buffers, and each parameter a view of its level's persistent region."""
        plan = self.module.attributes.get(MEMORY_ATTR)
        if not isinstance(plan, DictionaryAttr):
            return
        arenas, persistent = {}, {}
        for level, figures in plan.data.items():
            assert isinstance(figures, DictionaryAttr)
            sizes = {k: v.value.data for k, v in figures.data.items()}  # type: ignore[attr-defined]
            arenas[level] = sizes["arena"]
            persistent[level] = Memory.with_sizes({level: sizes["persistent"]}).arenas[level]
        self._interpreter.set_data(KernelFunctions, "memory", Memory.with_sizes(arenas))
        for name, op in params_of(self.module).items():
            level, offset = op.attributes.get(LEVEL_ATTR), op.attributes.get(OFFSET_ATTR)
            if not isinstance(level, StringAttr) or not isinstance(offset, IntegerAttr):
                raise InputError(f"parameter @{name} has no planned place")
            type = MemRefType(op.type.element_type, op.type.get_shape())
            placed = view(persistent[level.data], offset.value.data, type)
            placed[...] = self.params[name]
            self.params[name] = placed

    def run(self, function: str = "forward", inputs: Inputs = ()) -> tuple[np.ndarray, ...]:
        fn = get_function(self.module, function)
        args = self._arguments(fn, inputs)
        results = self._interpreter.call_op(fn, args)
        in_flight = dma_state(self._interpreter).in_flight
        if in_flight:
            count = len(in_flight)
            in_flight.clear()
            raise InterpretationError(
                f"@{function} returned with {count} DMA cop{'y' if count == 1 else 'ies'} "
                "never waited for (a dma.start without its dma.wait)"
            )
        # Copies: at the buffer level results are views of the memory arenas.
        return tuple(np.array(r) for r in results)

    @staticmethod
    def _arguments(fn: func.FuncOp, inputs: Inputs) -> tuple[np.ndarray, ...]:
        types = fn.function_type.inputs.data
        names = input_names(fn)
        if isinstance(inputs, Mapping):
            missing = [n for n in names if n not in inputs]
            extra = sorted(set(inputs) - set(names))
            if missing or extra:
                raise InputError(
                    f"@{fn.sym_name.data} takes inputs {names}; "
                    + (f"missing {missing}" if missing else "")
                    + ("; " if missing and extra else "")
                    + (f"unknown {extra}" if extra else "")
                )
            values = [inputs[n] for n in names]
        else:
            values = list(inputs)
            if len(values) != len(types):
                raise InputError(
                    f"@{fn.sym_name.data} takes {len(types)} input(s) {names}, got "
                    f"{len(values)}"
                )
        arrays = tuple(
            _check_array(f"input '{name}'", value, type)
            for name, value, type in zip(names, values, types, strict=True)
            if isinstance(type, TensorType | MemRefType)
        )
        for index, classes in label_inputs(fn).items():
            check_labels(arrays[index], classes, names[index],
                         f" (an input of @{fn.sym_name.data})")
        return arrays


def _tiled_source(fn: func.FuncOp, value: SSAValue) -> SSAValue:
    """The buffer a kernel in a loop nest reads through a window, or through the slot
    a DMA copy fills from a window; `value` itself outside loop nests."""
    owner = value.owner
    if isinstance(owner, tile.WindowOp):
        return _tiled_source(fn, owner.buffer)
    if isinstance(owner, tile.SlotOp):
        for op in fn.walk():
            if (isinstance(op, dma.StartOp) and isinstance(op.dest.owner, tile.SlotOp)
                    and list(op.dest.owner.slots) == list(owner.slots)):
                return _tiled_source(fn, op.source)
    return value


def label_inputs(fn: func.FuncOp) -> dict[int, int]:
    """The inputs of `fn` used as class labels of a cross-entropy, by position, with
    the number of classes (the last dimension of the logits)."""
    result: dict[int, int] = {}
    for op in fn.walk():
        tensor_op = getattr(type(op), "TENSOR_OP", type(op))
        if tensor_op not in (train.CrossEntropyOp, train.CrossEntropyGradOp):
            continue
        logits, labels = (_tiled_source(fn, v) for v in op.operands[:2])
        if isinstance(labels, BlockArgument) and labels.owner is fn.body.block:
            assert isinstance(logits.type, TensorType | MemRefType)
            result[labels.index] = logits.type.get_shape()[-1]
    return result


def run(
    module: ModuleOp,
    function: str = "forward",
    inputs: Inputs = (),
    params: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, ...]:
    """Interprets `@function` on `inputs` (positional, or by input name) and returns its
    results."""
    return Session(module, params).run(function, inputs)
