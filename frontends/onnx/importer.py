"""The ONNX importer: loading, the stable topological order of the nodes, parameters
and constants, constant folding, the dispatch of each node to its lowering, the
collected errors and the final module (the rules are in the docstring of
`edge_opt.frontends.onnx`)."""

from __future__ import annotations

import heapq
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data
from onnx.reference import ReferenceEvaluator
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import lowerings as _lowerings  # noqa: F401 (registers)
from edge_opt.frontends.onnx.errors import Unsupported, UnsupportedOnnxError
from edge_opt.frontends.onnx.initializers import (
    Decision,
    ImportSummary,
    InitializerPlan,
    Untie,
    batch_size,
    compile_trainable,
)
from edge_opt.frontends.onnx.names import (
    RESERVED_SYMBOLS,
    _unique_names,
    sanitize_name,
    value_hint,
)
from edge_opt.frontends.onnx.registry import (
    _DEFAULT_DOMAINS,
    _LOWERINGS,
    _op_key,
    _OpInfo,
)
from edge_opt.frontends.onnx.values import (
    _FOLDABLE_POISON,
    _POISON,
    Const,
    Param,
    _Poison,
    _Value,
    tensor_shape,
)
from edge_opt.ir.model_io import first_line
from edge_opt.ir.session import NAME_ATTR
from edge_opt.support.dtypes import element_type, numpy_dtype, to_dense
from edge_opt.support.errors import ModelFileError, UserError
from edge_opt.support.shapes import ShapeError

MIN_OPSET, MAX_OPSET = 7, 24
"""Default-domain opsets we accept (the tests cover 7 and 10 to 24)."""

FUNCTION_NAME = "forward"

_NOT_FOLDABLE = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)
"""Nodes never evaluated at import time (their value is not a function of the inputs)."""
_SHAPE_ONLY = frozenset({"Shape", "Size"})
"""Ops that read only the static shape of their input, so they fold for any input."""


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def import_onnx(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    untie: Untie = "merged",
    trainable: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> ModuleOp:
    """Imports an ONNX model (a `ModelProto`, a path, or the bytes of a serialized
    model) as a verified module with `@forward` and inline-valued `nn.param`s (see the
    module docstring). Warnings (parameters shared between layers) are issued as
    `OnnxImportWarning`s; `import_onnx_with_summary` returns them instead.

    `input_shapes` gives static shapes for graph inputs whose ONNX shape has dynamic
    (symbolic or unknown) dimensions, e.g. `{"input": (1, 3, 32, 32)}`. `untie` says
    which shared initializers become one parameter per layer (`merged`, `all`, `none`;
    see "Initializers"), `trainable` is a regular expression of initializer names that
    train whatever the rule says. `base_dir` is where the external data of a model given
    as bytes or a `ModelProto` lives (a path's own directory otherwise).
    """
    module, summary = import_onnx_with_summary(
        model, input_shapes=input_shapes, untie=untie, trainable=trainable,
        base_dir=base_dir,
    )
    for message in summary.warnings:
        warnings.warn(message, OnnxImportWarning, stacklevel=2)
    return module


class OnnxImportWarning(UserWarning):
    """Something in the imported model the user should check (the driver prints it as
    `edge-opt: warning: ...`)."""


def import_onnx_with_summary(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    untie: Untie = "merged",
    trainable: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> tuple[ModuleOp, ImportSummary]:
    """`import_onnx`, and what it decided about every initializer (and why)."""
    proto = _load(model, base_dir)
    importer = Importer(
        proto, dict(input_shapes or {}), untie, compile_trainable(trainable)
    )
    return importer.run(), importer.summary


def _load(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    base_dir: str | os.PathLike[str] | None = None,
) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        proto, where = model, "the ONNX model"
    elif isinstance(model, bytes | bytearray | memoryview):
        where = "the ONNX input"
        try:
            proto = onnx.load_model_from_string(bytes(model))
        except Exception as e:  # protobuf DecodeError
            raise ModelFileError(
                f"{where}: not a readable ONNX model ({first_line(e)})"
            ) from None
    else:
        where = os.fspath(model)
        if not os.path.isfile(where):
            raise ModelFileError(f"{where}: no such file")
        try:
            # Resolves external data against the model's own directory.
            proto = onnx.load(where)
        except Exception as e:  # protobuf DecodeError, OSError, external data, ...
            raise ModelFileError(
                f"{where}: not a readable ONNX model ({first_line(e)})"
            ) from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelFileError(f"{where}: not an ONNX model (no graph or no opset)")
    _load_external_data(proto, where, base_dir)
    return proto


def _load_external_data(
    proto: onnx.ModelProto, where: str, base_dir: str | os.PathLike[str] | None
) -> None:
    """Reads the external data of initializers that still refer to it (a model given
    as bytes or a `ModelProto`): from `base_dir`, never from the current directory."""
    external = [t for t in proto.graph.initializer if uses_external_data(t)]
    if not external:
        return
    if base_dir is None:
        raise ModelFileError(
            f"{where}: initializer '{external[0].name}' has its data in an external "
            "file; import the model from its .onnx file (or give base_dir)"
        )
    for tensor in external:
        try:
            load_external_data_for_tensor(tensor, os.fspath(base_dir))
        except Exception as e:  # missing file, a location outside base_dir, ...
            raise ModelFileError(
                f"{where}: cannot read the external data of initializer "
                f"'{tensor.name}' from {base_dir} ({first_line(e)})"
            ) from None
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


# --------------------------------------------------------------------------------------
# Node helpers
# --------------------------------------------------------------------------------------


def _op_label(node: onnx.NodeProto) -> str:
    domain, op_type = _op_key(node)
    return f"{domain}.{op_type}" if domain else op_type


def _node_label(node: onnx.NodeProto) -> str:
    if node.name:
        return node.name
    outputs = [o for o in node.output if o]
    return f"<unnamed, output {outputs[0]}>" if outputs else "<unnamed>"


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    result = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        result[a.name] = value
    return result


# --------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------

class Importer:
    def __init__(
        self,
        model: onnx.ModelProto,
        input_shapes: dict[str, Sequence[int]],
        untie: Untie = "merged",
        trainable: re.Pattern[str] | None = None,
    ):
        self.graph = model.graph
        self.input_shapes = input_shapes
        self.untie: Untie = untie
        self.trainable = trainable
        self.summary = ImportSummary()
        opsets = {o.domain: o.version for o in model.opset_import}
        default = [opsets[d] for d in _DEFAULT_DOMAINS if d in opsets]
        if not default:
            raise ModelFileError(
                "the ONNX model imports no default-domain (ai.onnx) opset"
            )
        self.opset = max(default)
        self.opsets = {"": self.opset} | {
            d: v for d, v in opsets.items() if d not in _DEFAULT_DOMAINS
        }
        self.values: dict[str, _Value] = {}
        self.problems: dict[str, list[str]] = defaultdict(list)
        # Nodes without a lowering that only wait for an unimportable producer.
        self.downstream: dict[str, list[str]] = defaultdict(list)
        self.block = Block()
        self.params: list[Param] = []  # in order of first use
        # Keyed by the value object itself (identity hash): ids of dead objects recur.
        self.materialized: dict[Const | Param, SSAValue] = {}

    # ---- driver ----------------------------------------------------------------------

    def run(self) -> ModuleOp:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UnsupportedOnnxError(
                {
                    f"opset {self.opset} (supported: {MIN_OPSET}-{MAX_OPSET})": [
                        "<model>"
                    ]
                }
            )
        plan = InitializerPlan(
            self._sorted_nodes(),
            self._initializers(),
            [i.name for i in self.graph.input],
            [o.name for o in self.graph.output],
            self.untie,
            self.trainable,
        )
        self.summary = plan.summary
        wins = plan.input_wins()
        args = self._arguments(
            {n: a for n, a in plan.initializers.items() if n not in wins}
        )
        batch = batch_size([tensor_shape(a) for a in self.block.args])
        self._values(plan.decide(batch), plan.initializers)
        for node in plan.nodes:
            self._import_node(node)
        outputs = [o.name for o in self.graph.output]
        if not self.problems:
            for name in outputs:
                if isinstance(self.values.get(name), _Poison):
                    self.problems["graph output without a value"].append(name)
        if self.problems:
            raise UnsupportedOnnxError(self.problems, self.downstream)
        results = [self._ssa(self.values[name]) for name in outputs]
        self.block.add_op(func.ReturnOp(*results))
        return self._module(args, results, outputs)

    def _module(
        self, args: list[str], results: list[SSAValue], outputs: list[str]
    ) -> ModuleOp:
        def names(values: list[str]) -> ArrayAttr[DictionaryAttr] | None:
            if not values:
                return None
            return ArrayAttr(
                [DictionaryAttr({NAME_ATTR: StringAttr(v)}) for v in values]
            )

        function = func.FuncOp(
            FUNCTION_NAME,
            ([a.type for a in self.block.args], [r.type for r in results]),
            Region(self.block),
            arg_attrs=names(args),
            res_attrs=names(outputs),
        )
        symbols = _unique_names([p.onnx_name for p in self.params], RESERVED_SYMBOLS)
        self.summary.symbols = dict(
            zip((p.onnx_name for p in self.params), symbols, strict=True)
        )
        param_ops = []
        for param, symbol in zip(self.params, symbols, strict=True):
            type = TensorType(element_type(param.array.dtype), param.array.shape)
            param_ops.append(
                nn.ParamOp(symbol, type, param.trainable, to_dense(param.array, type))
            )
            for load in param.loads:
                load.properties["param"] = SymbolRefAttr(symbol)
                load.result.name_hint = symbol
        module = ModuleOp([*param_ops, function])
        try:
            module.verify()
        except VerifyException as e:  # a lowering bug, not the user's
            raise AssertionError(
                f"imported module does not verify: {first_line(e)}"
            ) from e
        return module

    def _sorted_nodes(self) -> list[onnx.NodeProto]:
        """The nodes in a stable topological order (exporters do not always sort)."""
        nodes = list(self.graph.node)
        available = {i.name for i in self.graph.input} | {
            i.name for i in self.graph.initializer
        }
        producer = self._producers(nodes, available)
        waiting, users = _dependencies(nodes, available, producer)
        return _topological_order(nodes, waiting, users)

    def _producers(
        self, nodes: list[onnx.NodeProto], available: set[str]
    ) -> dict[str, int]:
        """The index of the node that defines each value; checks that every value is
        defined once and that every graph output is defined."""
        producer: dict[str, int] = {}
        for index, node in enumerate(nodes):
            for output in node.output:
                if not output:
                    continue
                if output in producer or output in available:
                    raise ModelFileError(
                        f"ONNX value '{output}' is defined more than once (by node "
                        f"'{_node_label(node)}' and before)"
                    )
                producer[output] = index
        for output in self.graph.output:
            if output.name not in producer and output.name not in available:
                raise ModelFileError(
                    f"graph output '{output.name}' is not a graph input, an initializer "
                    "or the output of any node"
                )
        return producer

    def _initializers(self) -> dict[str, np.ndarray]:
        arrays = {}
        for tensor in self.graph.initializer:
            try:
                arrays[tensor.name] = numpy_helper.to_array(tensor)
            except Exception as e:
                raise ModelFileError(
                    f"cannot read initializer '{tensor.name}' ({first_line(e)})"
                ) from None
        if len(self.graph.sparse_initializer):
            self.problems["sparse initializers"].extend(
                t.values.name for t in self.graph.sparse_initializer
            )
        return arrays

    def _values(
        self, decisions: Mapping[str, Decision], arrays: Mapping[str, np.ndarray]
    ) -> None:
        """Initializers become `Param` or `Const` values as the plan decided (the rule
        in the module docstring)."""
        for name, decision in decisions.items():
            array = arrays[name]
            if decision.kind in ("trainable", "frozen"):
                self.values[name] = Param(name, array, decision.kind == "trainable")
            elif decision.kind in ("constant", "unused"):  # unused: Shape may read it
                self.values[name] = Const(array, name)

    def _arguments(self, initializers: dict[str, np.ndarray]) -> list[str]:
        inputs = [i for i in self.graph.input if i.name not in initializers]
        unknown = sorted(set(self.input_shapes) - {i.name for i in inputs})
        if unknown:
            raise UserError(
                f"input_shapes names {unknown}, which are not inputs of the ONNX model "
                f"(its inputs: {[i.name for i in inputs]})"
            )
        names = []
        for value in inputs:
            type = self._input_type(value)
            arg = self.block.insert_arg(type, len(self.block.args))
            arg.name_hint = value_hint(value.name)
            self.values[value.name] = arg
            names.append(value.name)
        return names

    def _input_type(self, value: onnx.ValueInfoProto) -> TensorType:
        if not value.type.HasField("tensor_type"):
            raise UserError(f"graph input '{value.name}' is not a tensor")
        tensor = value.type.tensor_type
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
            element = element_type(dtype)
        except (KeyError, ValueError, NotImplementedError, TypeError):
            raise UserError(
                f"graph input '{value.name}' has element type "
                f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}, which edge-opt "
                "does not support"
            ) from None
        dims = (
            [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            if tensor.HasField("shape")
            else None
        )
        override = self.input_shapes.get(value.name)
        if override is not None:
            shape = tuple(int(d) for d in override)
            if dims is not None and (
                len(dims) != len(shape)
                or any(d is not None and d != s for d, s in zip(dims, shape))
            ):
                raise UserError(
                    f"input_shapes gives {list(shape)} for '{value.name}', which does "
                    f"not match its ONNX shape {self._dims_text(tensor)}"
                )
        elif dims is None or None in dims:
            raise UserError(
                f"graph input '{value.name}' has a dynamic shape "
                f"{self._dims_text(tensor)}; give a static one with "
                f"input_shapes={{'{value.name}': (...)}} (CLI: --input-shape)"
            )
        else:
            shape = tuple(dims)
        if any(d < 1 for d in shape):
            raise UserError(
                f"graph input '{value.name}' has an empty shape {list(shape)}"
            )
        return TensorType(element, shape)

    @staticmethod
    def _dims_text(tensor: onnx.TypeProto.Tensor) -> str:
        if not tensor.HasField("shape"):
            return "(unknown rank)"
        return (
            "["
            + ", ".join(
                str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tensor.shape.dim
            )
            + "]"
        )

    # ---- one node --------------------------------------------------------------------

    def _import_node(self, node: onnx.NodeProto) -> None:
        inputs = [self.values[name] if name else None for name in node.input]
        info = _LOWERINGS.get(_op_key(node))
        outputs = None
        poison = _POISON
        if any(isinstance(v, _Poison) for v in inputs):
            if self._foldable(node, inputs):
                poison = _FOLDABLE_POISON
                if info is None:
                    self.downstream[_op_label(node)].append(_node_label(node))
            elif info is None:
                self._problem(_op_label(node), node)
        elif self._foldable(node, inputs):
            outputs = self._fold(node, inputs, info)
        elif info is None:
            self._problem(_op_label(node), node)
        else:
            outputs = self._lower(node, info, inputs)
        if outputs is None:
            for name in node.output:
                if name:
                    self.values[name] = poison
            return
        for index, name in enumerate(node.output):
            if not name:
                continue
            if index < len(outputs) and outputs[index] is not None:
                self.values[name] = outputs[index]
            else:
                self.values[name] = _POISON
                if self._is_used(name):
                    self._problem(f"{_op_label(node)}: output {index} ({name})", node)

    def _is_used(self, name: str) -> bool:
        return any(name in n.input for n in self.graph.node) or any(
            o.name == name for o in self.graph.output
        )

    def _problem(self, kind: str, node: onnx.NodeProto) -> None:
        self.problems[kind].append(_node_label(node))

    def _foldable(self, node: onnx.NodeProto, inputs: list[_Value | None]) -> bool:
        """Default-domain nodes with constant inputs, and Shape/Size of anything. (For a
        node with poisoned inputs: whether it would fold once they import, the values
        of foldable poison counting as constants.)"""
        if _op_key(node)[0] != "" or node.op_type in _NOT_FOLDABLE:
            return False
        if node.op_type in _SHAPE_ONLY:
            return True
        return all(
            v is None or isinstance(v, Const) or (isinstance(v, _Poison) and v.foldable)
            for v in inputs
        )

    def _fold(
        self, node: onnx.NodeProto, inputs: list[_Value | None], info: _OpInfo | None
    ) -> list[_Value] | None:
        try:
            results = self.evaluate(node, inputs)
        except Exception as e:
            if info is not None:
                # Fold failed (say, an attribute the evaluator lacks): lower instead.
                return self._lower(node, info, inputs)
            self._problem(f"{_op_label(node)} (cannot evaluate: {first_line(e)})", node)
            return None
        return [Const(np.asarray(r), name) for r, name in zip(results, node.output)]

    def evaluate(self, node: onnx.NodeProto, inputs: list[_Value | None]) -> list:
        """`node` run by ONNX's reference evaluator on the constant inputs' values and,
        for the others, zeros of their static shape (a Shape or Size, or a shape op's
        output size, depends on nothing else)."""
        feeds = {}
        for name, value in zip(node.input, inputs):
            if not name:
                continue
            if isinstance(value, Const):
                feeds[name] = value.array
            else:
                shape, dtype = self._shape_and_dtype(value)
                feeds[name] = np.broadcast_to(np.zeros((), dtype), shape)
        return ReferenceEvaluator(node, opsets=self.opsets).run(None, feeds)

    def _shape_and_dtype(self, value: _Value) -> tuple[tuple[int, ...], np.dtype]:
        if isinstance(value, Const | Param):
            return value.array.shape, value.array.dtype
        assert isinstance(value, SSAValue) and isinstance(value.type, TensorType)
        return tensor_shape(value), numpy_dtype(value.type.element_type)

    def _lower(
        self, node: onnx.NodeProto, info: _OpInfo, inputs: list[_Value | None]
    ) -> list[_Value] | None:
        attributes = _attributes(node)
        unknown = sorted(set(attributes) - info.attributes)
        if unknown:
            self._problem(
                f"{_op_label(node)}: attribute{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)}",
                node,
            )
            return None
        first_new = len(self.block.ops)
        # Absent optional inputs read as None, so lowerings index without length checks.
        padded = list(inputs) + [None] * 8
        try:
            outputs = info.lower(self, node, padded, attributes)
        except Unsupported as e:
            self._problem(f"{_op_label(node)}: {e}", node)
            return None
        except (ShapeError, VerifyException) as e:
            self._problem(f"{_op_label(node)}: {first_line(e)}", node)
            return None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            # Attribute values of the wrong kind and the like: a malformed node.
            self._problem(f"{_op_label(node)}: malformed node ({first_line(e)})", node)
            return None
        new_ops = list(self.block.ops)[first_new:]
        new_values = {r for op in new_ops for r in op.results}
        for output, name in zip(outputs, node.output):
            if isinstance(output, SSAValue) and output in new_values and name:
                output.name_hint = value_hint(name)
        return outputs

    # ---- helpers for the lowerings ---------------------------------------------------

    def emit(self, op: Operation) -> SSAValue:
        """Appends `op` (verified, so a broken rule names this node) and returns its
        result."""
        if not isinstance(op, nn.LoadOp):
            op.verify()
        self.block.add_op(op)
        return op.results[0]

    def _ssa(self, value: _Value | None) -> SSAValue:
        """The SSA value of an input, emitting `nn.load` / `nn.constant` on first use."""
        if isinstance(value, SSAValue):
            return value
        assert isinstance(value, Const | Param), value
        cached = self.materialized.get(value)
        if cached is not None:
            return cached
        if isinstance(value, Param):
            type = TensorType(element_type(value.array.dtype), value.array.shape)
            load = nn.LoadOp(sanitize_name(value.onnx_name), type)
            if not value.loads:
                self.params.append(value)
            value.loads.append(load)
            result = self.emit(load)
        else:
            try:
                dense = to_dense(value.array)
            except NotImplementedError as e:
                raise Unsupported(f"constant '{value.source}': {e}") from None
            result = self.emit(nn.ConstantOp(dense))
            result.name_hint = value_hint(value.source)
        self.materialized[value] = result
        return result

    def ssa(self, value: _Value | None, what: str = "input") -> SSAValue:
        if value is None:
            raise Unsupported(f"missing {what}")
        return self._ssa(value)

    def constant(self, value: _Value | None, what: str) -> np.ndarray:
        """The import-time value of a shape-like input."""
        if not isinstance(value, Const):
            raise Unsupported(f"non-constant {what}")
        return value.array

    def scalar(self, value: float, like: SSAValue) -> SSAValue:
        """A rank-0 `nn.constant` of `like`'s element type."""
        assert isinstance(like.type, TensorType)
        array = np.asarray(value, dtype=numpy_dtype(like.type.element_type))
        return self.emit(nn.ConstantOp(to_dense(array)))

    def like(self, value: _Value, dtype_of: SSAValue) -> SSAValue:
        """`value` as an SSA value; a constant is converted to `dtype_of`'s element type
        (Pow's exponent may be an integer in ONNX)."""
        if isinstance(value, Const):
            assert isinstance(dtype_of.type, TensorType)
            dtype = numpy_dtype(dtype_of.type.element_type)
            if value.array.dtype != dtype:
                value = Const(value.array.astype(dtype), value.source)
        return self._ssa(value)



# --------------------------------------------------------------------------------------
# Topological order
# --------------------------------------------------------------------------------------


def _dependencies(
    nodes: list[onnx.NodeProto], available: set[str], producer: dict[str, int]
) -> tuple[list[int], dict[int, list[int]]]:
    """For each node, how many of its inputs other nodes produce, and for each node the
    nodes that read its outputs; raises on an input that nothing defines."""
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            if not name or (name in available and name not in producer):
                continue
            if name not in producer:
                raise ModelFileError(
                    f"ONNX node '{_node_label(node)}' ({node.op_type}) reads "
                    f"'{name}', which is not a graph input, an initializer or the "
                    "output of any node"
                )
            waiting[index] += 1
            users[producer[name]].append(index)
    return waiting, users


def _topological_order(
    nodes: list[onnx.NodeProto], waiting: list[int], users: dict[int, list[int]]
) -> list[onnx.NodeProto]:
    """Kahn's algorithm, always taking the ready node that comes first in the file (so
    a sorted graph keeps its order); raises on a cycle."""
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(nodes[index])
        for user in users[index]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = next(n for i, n in enumerate(nodes) if waiting[i])
        raise ModelFileError(
            f"the ONNX graph has a cycle through node '{_node_label(stuck)}'"
        )
    return order
