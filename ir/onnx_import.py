"""Importing ONNX models into the `nn` dialect.

    from edge_opt.ir.onnx_import import import_onnx
    module = import_onnx("network.onnx")                # verified, self-contained
    (logits,) = run(module, "forward", {"input": x})    # ONNX input names

`import_onnx` returns a verified `ModuleOp` holding one `nn.param` per parameter (with its
value inline; `edge_opt.ir.model_io.save_model` moves large values to the sidecar `.npz`)
and `func.func @forward`. Each argument and result of `@forward` carries the attribute
`nn.name = "<ONNX name>"` (`edge_opt.ir.session.NAME_ATTR`), so `run` accepts inputs by
their ONNX names. SSA values are named after the ONNX values they implement (sanitized;
see `value_hint`), the order of ops is a stable topological order of the ONNX nodes, and
the same ONNX file always prints the same module.

Parameters and constants — the rule
-----------------------------------
Only initializers can be parameters; every other constant (a `Constant` node, a folded
value) is an `nn.constant`. A float initializer that the graph reads becomes an
`nn.param` unless it is a literal of the computation:

- a rank-0 float initializer is a literal (the attention scale 0.125, Pow's exponent 2.0
  and the epsilon 1e-5 in the exported CCT layer norms are all rank 0); so is
- a one-element float initializer used only as Pow's exponent, or only as an operand of
  an Add whose result feeds nothing but Sqrt (the epsilon of a decomposed norm).

Every other float initializer is a parameter, including one-element ones such as the CCT
training fixtures' `classifier_attention_pool_bias` (shape [1], trained by all of them):
the exporters put every tensor of the model's state into initializers, so a rank >= 1
float initializer is state unless its use says otherwise. Parameters are trainable,
except those that only serve as `BatchNormalization` running mean or variance (inputs 3
and 4), which are `trainable = false`. Integer and boolean initializers are constants
(shape arguments, mostly folded away). Graph inputs that have an initializer of the same
name (older exporters list the weights as inputs, e.g. Autoencoder1D) are initializers,
not function arguments. Unused initializers are dropped.

An `Identity` (or inference `Dropout`) of a parameter is that parameter: TinyViT's
exporter ties equal-valued tensors through `Identity` nodes, and the import keeps them
tied (one parameter, as in the ONNX file; its parameter count, 1,406, matches the
reference).

Parameter names: every character outside `[A-Za-z0-9_]` becomes `_`, a leading digit gets
a `p_` prefix (`classifier.fc.weight` -> `classifier_fc_weight`, `onnx::MatMul_943` ->
`onnx__MatMul_943`). Names that need no change keep it; a sanitized name that collides
gets the first free suffix `_1`, `_2`, ...; `forward` is reserved for the function.

Constant folding
----------------
A node whose inputs are all constants (initializers that are not parameters, `Constant`
nodes, folded values) is evaluated at import time with `onnx.reference.ReferenceEvaluator`
and produces no op. `Shape` and `Size` of any other value fold to its static shape (every
type here is static), which removes the `Shape -> Slice/Gather -> Concat -> Reshape`
chains of exporters. Parameters are never folded: a `Transpose` of a weight stays an op,
so the weight stays trainable.

Supported ops
-------------
Default domain, opsets 7-22 (tested: 12-20): Conv, ConvTranspose (1-D and 2-D; 1-D ops
become the 2-D op on a height-1 tensor between `nn.unsqueeze` and `nn.squeeze`), Gemm,
MatMul, Add, Sub, Mul, Div, Pow, Relu, Gelu, Erf, Sqrt, Exp, Log, Neg, Sigmoid, Tanh,
HardSwish, Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference),
MaxPool, AveragePool (1-D, 2-D), GlobalAveragePool, Reshape, Transpose, Flatten, Squeeze,
Unsqueeze, Concat, Slice, ReduceMean, ReduceSum, Constant, Identity, Dropout, Shape, Size;
plus any op the reference evaluator can fold. `com.microsoft`: Gelu (exact) and FastGelu
(tanh form, optional bias). `auto_pad` NOTSET, VALID, SAME_UPPER and SAME_LOWER.

Where the ONNX semantics depend on the opset they follow the model's opset: Softmax and
LogSoftmax before 13 flatten the input to 2-D at `axis` (lowered to reshape, softmax over
axis 1, reshape back), from 13 on they act on one axis; Squeeze/Unsqueeze/ReduceSum take
`axes` from an attribute before 13 and from an input after; ReduceMean from 18; Slice
from 10.

Deliberate extensions: Gemm accepts operands of rank > 2 as a batched product (Deeploy's
`CCT_FP32_CCT_2_32_32_128` fuses MatMul + Add into such a Gemm, which onnxruntime
rejects); LayerNormalization is accepted below opset 17 (onnxruntime's contrib op of the
same name, used by the opset-12 CCT models). Empty tensors are not supported.

Errors
------
Every node that cannot be imported — an op type without a lowering, an attribute value
or a non-constant shape argument we do not support — is collected, and one
`UnsupportedOnnxError` lists them all, grouped by op type with counts and a node name
each (nodes that only read the value of an unimportable node are not reported again).
A file that is missing or not an ONNX model, or a graph that is inconsistent (an
input nobody produces), raises `ModelFileError`; a graph input with a dynamic dimension
and no entry in `input_shapes` raises `UserError`.
"""

from __future__ import annotations

import heapq
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
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
from edge_opt.ir import shapes
from edge_opt.ir.dtypes import element_type, numpy_dtype, to_dense
from edge_opt.ir.errors import ModelFileError, UserError
from edge_opt.ir.model_io import first_line
from edge_opt.ir.session import NAME_ATTR
from edge_opt.ir.shapes import ShapeError

__all__ = [
    "UnsupportedOnnxError",
    "import_onnx",
    "sanitize_name",
    "value_hint",
]

MIN_OPSET, MAX_OPSET = 7, 22
"""Default-domain opsets we accept (the tests cover 12 to 20)."""

FUNCTION_NAME = "forward"
_DEFAULT_DOMAINS = ("", "ai.onnx")
_MS_DOMAIN = "com.microsoft"
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
_ALIASES = frozenset({"Identity", "Dropout"})


class UnsupportedOnnxError(UserError):
    """The model uses ops or attributes the importer does not support.

    `problems` maps each kind of problem (an op type such as `"Gather"`, or
    `"Conv: auto_pad=FOO"`) to the names of the nodes that have it.
    """

    def __init__(self, problems: Mapping[str, Sequence[str]]):
        self.problems = {k: list(v) for k, v in sorted(problems.items())}
        count = sum(len(v) for v in self.problems.values())
        lines = [
            f"the ONNX model has {count} node(s) that edge-opt cannot import "
            f"({len(self.problems)} kind(s)):"
        ]
        for kind, nodes in self.problems.items():
            example = "'" + nodes[0] + "'"
            lines.append(
                f"  {kind}: {len(nodes)} node{'s' if len(nodes) > 1 else ''} "
                f"({'e.g. ' if len(nodes) > 1 else ''}{example})"
            )
        super().__init__("\n".join(lines))


class _Unsupported(Exception):
    """Raised by a lowering: this node uses something we do not support."""


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

_NON_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
_INDEX_SUFFIX = re.compile(r"(_\d+)+$")


def sanitize_name(name: str) -> str:
    """Parameter symbol for an ONNX name: characters outside `[A-Za-z0-9_]` become `_`,
    a leading digit (or an empty name) gets a `p_` prefix."""
    name = _NON_IDENTIFIER.sub("_", name)
    if not name or name[0].isdigit():
        name = "p_" + name
    return name


def value_hint(name: str) -> str | None:
    """SSA name hint for an ONNX value name: sanitized as `sanitize_name`, without
    leading/trailing underscores and without a trailing `_<digits>` (xDSL drops that from
    hints anyway, and its printer appends its own `_1`, `_2` to repeated hints); None
    when no name starting with a letter is left (the printer then numbers the value)."""
    hint = _NON_IDENTIFIER.sub("_", name).strip("_")
    hint = _INDEX_SUFFIX.sub("", hint).rstrip("_")
    return hint if hint and not hint[0].isdigit() else None


def _unique_names(names: Sequence[str], reserved: set[str]) -> list[str]:
    """Symbols for `names` (ONNX names, in order): valid ones keep their name first, the
    others are sanitized and suffixed until unique."""
    taken = set(reserved)
    result: list[str | None] = [None] * len(names)
    for i, name in enumerate(names):
        if sanitize_name(name) == name and name not in taken:
            result[i] = name
            taken.add(name)
    for i, name in enumerate(names):
        if result[i] is not None:
            continue
        base = sanitize_name(name)
        candidate, suffix = base, 0
        while candidate in taken:
            suffix += 1
            candidate = f"{base}_{suffix}"
        result[i] = candidate
        taken.add(candidate)
    return [r for r in result if r is not None]


# --------------------------------------------------------------------------------------
# Values during the import
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Const:
    """A value known at import time."""

    array: np.ndarray
    source: str


@dataclass(eq=False)
class _Param:
    """An initializer that becomes an `nn.param` when an op reads it."""

    onnx_name: str
    array: np.ndarray
    trainable: bool
    loads: list[nn.LoadOp] = field(default_factory=list)


class _Poison:
    """The value of a node that could not be imported (already reported)."""


_POISON = _Poison()
_Value = _Const | _Param | SSAValue | _Poison


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def import_onnx(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModuleOp:
    """Imports an ONNX model (a `ModelProto`, a path, or the bytes of a serialized
    model) as a verified module with `@forward` and inline-valued `nn.param`s (see the
    module docstring).

    `input_shapes` gives static shapes for graph inputs whose ONNX shape has dynamic
    (symbolic or unknown) dimensions, e.g. `{"input": (1, 3, 32, 32)}`.
    """
    proto = _load(model)
    return _Importer(proto, dict(input_shapes or {})).run()


def _load(model: onnx.ModelProto | str | os.PathLike[str] | bytes) -> onnx.ModelProto:
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
            proto = onnx.load(where)
        except Exception as e:  # protobuf DecodeError, OSError, external data, ...
            raise ModelFileError(
                f"{where}: not a readable ONNX model ({first_line(e)})"
            ) from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelFileError(f"{where}: not an ONNX model (no graph or no opset)")
    return proto


# --------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------

_Lowering = Callable[
    ["_Importer", onnx.NodeProto, list[Any], dict[str, Any]], list[Any]
]


@dataclass(frozen=True)
class _OpInfo:
    lower: _Lowering
    attributes: frozenset[str]


_LOWERINGS: dict[tuple[str, str], _OpInfo] = {}


def _lowering(op_type: str, attributes: Sequence[str] = (), domain: str = ""):
    """Registers a lowering of `domain.op_type` that understands `attributes`."""

    def register(f: _Lowering) -> _Lowering:
        _LOWERINGS[(domain, op_type)] = _OpInfo(f, frozenset(attributes))
        return f

    return register


def _op_key(node: onnx.NodeProto) -> tuple[str, str]:
    domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
    return domain, node.op_type


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


class _Importer:
    def __init__(self, model: onnx.ModelProto, input_shapes: dict[str, Sequence[int]]):
        self.graph = model.graph
        self.input_shapes = input_shapes
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
        self.block = Block()
        self.params: list[_Param] = []  # in order of first use
        # Keyed by the value object itself (identity hash): ids of dead objects recur.
        self.materialized: dict[_Const | _Param, SSAValue] = {}

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
        nodes = self._sorted_nodes()
        initializers = self._initializers()
        self._classify(initializers, nodes)
        args = self._arguments(initializers)
        for node in nodes:
            self._import_node(node)
        outputs = [o.name for o in self.graph.output]
        if not self.problems:
            for name in outputs:
                if isinstance(self.values.get(name), _Poison):
                    self.problems["graph output without a value"].append(name)
        if self.problems:
            raise UnsupportedOnnxError(self.problems)
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
        symbols = _unique_names([p.onnx_name for p in self.params], {FUNCTION_NAME})
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

    def _classify(
        self, initializers: dict[str, np.ndarray], nodes: list[onnx.NodeProto]
    ) -> None:
        """Initializers become `_Param` or `_Const` values (the rule in the module
        docstring)."""
        consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        for node in nodes:
            for index, name in enumerate(node.input):
                if name:
                    consumers[name].append((node, index))

        def uses(name: str, seen: frozenset[str] = frozenset()):
            """(node, input index) of every use, looking through alias nodes."""
            for node, index in consumers[name]:
                if (
                    node.op_type in _ALIASES
                    and index == 0
                    and node.output[0] not in seen
                ):
                    yield from uses(node.output[0], seen | {node.output[0]})
                else:
                    yield node, index

        def is_literal_use(node: onnx.NodeProto, index: int) -> bool:
            if node.op_type == "Pow" and index == 1:
                return True  # an exponent
            if node.op_type != "Add":
                return False
            users = [user.op_type for user, _ in uses(node.output[0])]
            return bool(users) and all(u == "Sqrt" for u in users)  # an epsilon

        for name, array in initializers.items():
            all_uses = list(uses(name))
            literal = array.ndim == 0 or (
                array.size == 1 and all(is_literal_use(n, i) for n, i in all_uses)
            )
            if array.dtype.kind != "f" or literal:
                self.values[name] = _Const(array, name)
                continue
            statistics = all(
                n.op_type == "BatchNormalization" and i in (3, 4) for n, i in all_uses
            )
            self.values[name] = _Param(name, array, trainable=not statistics)

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
        if any(isinstance(v, _Poison) for v in inputs):
            if info is None:
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
                    self.values[name] = _POISON
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
        """Default-domain nodes with constant inputs, and Shape/Size of anything."""
        if _op_key(node)[0] != "" or node.op_type in _NOT_FOLDABLE:
            return False
        if node.op_type in _SHAPE_ONLY:
            return True
        return all(v is None or isinstance(v, _Const) for v in inputs)

    def _fold(
        self, node: onnx.NodeProto, inputs: list[_Value | None], info: _OpInfo | None
    ) -> list[_Value] | None:
        from onnx.reference import ReferenceEvaluator

        feeds = {}
        for name, value in zip(node.input, inputs):
            if not name:
                continue
            if isinstance(value, _Const):
                feeds[name] = value.array
            else:  # Shape/Size: only the static shape matters
                shape, dtype = self._shape_and_dtype(value)
                feeds[name] = np.broadcast_to(np.zeros((), dtype), shape)
        try:
            evaluator = ReferenceEvaluator(node, opsets=self.opsets)
            results = evaluator.run(None, feeds)
        except Exception as e:
            if info is not None:
                # Fold failed (say, an attribute the evaluator lacks): lower instead.
                return self._lower(node, info, inputs)
            self._problem(f"{_op_label(node)} (cannot evaluate: {first_line(e)})", node)
            return None
        return [_Const(np.asarray(r), name) for r, name in zip(results, node.output)]

    def _shape_and_dtype(self, value: _Value) -> tuple[tuple[int, ...], np.dtype]:
        if isinstance(value, _Const | _Param):
            return value.array.shape, value.array.dtype
        assert isinstance(value, SSAValue) and isinstance(value.type, TensorType)
        return _shape(value), numpy_dtype(value.type.element_type)

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
        except _Unsupported as e:
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
        assert isinstance(value, _Const | _Param), value
        cached = self.materialized.get(value)
        if cached is not None:
            return cached
        if isinstance(value, _Param):
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
                raise _Unsupported(f"constant '{value.source}': {e}") from None
            result = self.emit(nn.ConstantOp(dense))
            result.name_hint = value_hint(value.source)
        self.materialized[value] = result
        return result

    def ssa(self, value: _Value | None, what: str = "input") -> SSAValue:
        if value is None:
            raise _Unsupported(f"missing {what}")
        return self._ssa(value)

    def constant(self, value: _Value | None, what: str) -> np.ndarray:
        """The import-time value of a shape-like input."""
        if not isinstance(value, _Const):
            raise _Unsupported(f"non-constant {what}")
        return value.array

    def scalar(self, value: float, like: SSAValue) -> SSAValue:
        """A rank-0 `nn.constant` of `like`'s element type."""
        assert isinstance(like.type, TensorType)
        array = np.asarray(value, dtype=numpy_dtype(like.type.element_type))
        return self.emit(nn.ConstantOp(to_dense(array)))

    def like(self, value: _Value, dtype_of: SSAValue) -> SSAValue:
        """`value` as an SSA value; a constant is converted to `dtype_of`'s element type
        (Pow's exponent may be an integer in ONNX)."""
        if isinstance(value, _Const):
            assert isinstance(dtype_of.type, TensorType)
            dtype = numpy_dtype(dtype_of.type.element_type)
            if value.array.dtype != dtype:
                value = _Const(value.array.astype(dtype), value.source)
        return self._ssa(value)


def _int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _normalize(axis: int, rank: int) -> int:
    return shapes.normalize_axis(int(axis), rank)


# --------------------------------------------------------------------------------------
# Lowerings: element-wise
# --------------------------------------------------------------------------------------

_UNARY: dict[str, type[nn.UnaryElementwiseOp]] = {
    "Relu": nn.ReluOp,
    "Sigmoid": nn.SigmoidOp,
    "Tanh": nn.TanhOp,
    "Erf": nn.ErfOp,
    "Sqrt": nn.SqrtOp,
    "Exp": nn.ExpOp,
    "Log": nn.LogOp,
    "Neg": nn.NegOp,
    "HardSwish": nn.HardswishOp,
}


def _unary_lowering(op: type[nn.UnaryElementwiseOp]) -> _Lowering:
    def lower(self: _Importer, node, ins, attrs):
        return [self.emit(op(self.ssa(ins[0])))]

    return lower


for _name, _op in _UNARY.items():
    _lowering(_name)(_unary_lowering(_op))

_BINARY: dict[str, type[nn.BinaryElementwiseOp]] = {
    "Add": nn.AddOp,
    "Sub": nn.SubOp,
    "Mul": nn.MulOp,
    "Div": nn.DivOp,
    "Pow": nn.PowOp,
}


def _binary_lowering(op: type[nn.BinaryElementwiseOp]) -> _Lowering:
    def lower(self: _Importer, node, ins, attrs):
        if ins[0] is None or ins[1] is None:
            raise _Unsupported("missing operand")
        if isinstance(ins[0], _Const) and not isinstance(ins[1], _Const):
            rhs = self.ssa(ins[1])
            lhs = self.like(ins[0], rhs)
        else:
            lhs = self.ssa(ins[0])
            rhs = self.like(ins[1], lhs)
        return [self.emit(op(lhs, rhs))]

    return lower


for _name, _op in _BINARY.items():
    _lowering(_name)(_binary_lowering(_op))


@_lowering("Gelu", ["approximate"])
def _gelu(self: _Importer, node, ins, attrs):
    approximate = attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise _Unsupported(f"approximate={approximate}")
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), approximate))]


@_lowering("Gelu", domain=_MS_DOMAIN)
def _ms_gelu(self: _Importer, node, ins, attrs):
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), "none"))]


@_lowering("FastGelu", domain=_MS_DOMAIN)
def _ms_fast_gelu(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    if ins[1] is not None:
        x = self.emit(nn.AddOp(x, self.ssa(ins[1])))
    return [self.emit(nn.GeluOp(x, "tanh"))]


# --------------------------------------------------------------------------------------
# Lowerings: linear algebra
# --------------------------------------------------------------------------------------


@_lowering("MatMul")
def _matmul(self: _Importer, node, ins, attrs):
    a, b = self.ssa(ins[0]), self.ssa(ins[1])
    a_vector, b_vector = len(_shape(a)) == 1, len(_shape(b)) == 1
    if a_vector:
        a = self.emit(nn.UnsqueezeOp(a, [0]))
    if b_vector:
        b = self.emit(nn.UnsqueezeOp(b, [1]))
    y = self.emit(nn.MatmulOp(a, b))
    drop = ([-2] if a_vector else []) + ([-1] if b_vector else [])
    if drop:
        rank = len(_shape(y))
        y = self.emit(nn.SqueezeOp(y, sorted(d % rank for d in drop)))
    return [y]


@_lowering("Gemm", ["alpha", "beta", "transA", "transB", "broadcast"])
def _gemm(self: _Importer, node, ins, attrs):
    """`alpha * op(A) @ op(B) + beta * C`; `nn.linear` when it is `A @ W.T + b`."""
    a, b = self.ssa(ins[0]), self.ssa(ins[1])
    c = ins[2]
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    if trans_b and not trans_a and len(_shape(b)) == 2:
        n = _shape(b)[0]
        bias = None
        if c is not None and alpha == 1.0 and beta == 1.0:
            c_ssa = self.ssa(c)
            c_shape = _shape(c_ssa)
            if c_shape == (n,):
                bias = c_ssa
            elif (
                c_shape[-1:] == (n,)
                and math.prod(c_shape) == n
                and len(c_shape) <= len(_shape(a))
            ):
                bias = self.emit(nn.ReshapeOp(c_ssa, (n,)))
            if bias is not None:
                return [self.emit(nn.LinearOp(a, b, bias))]
        y = self.emit(nn.LinearOp(a, b))
    else:
        y = self.emit(nn.MatmulOp(a, b, trans_a, trans_b))
    if alpha != 1.0:
        y = self.emit(nn.MulOp(y, self.scalar(alpha, y)))
    if c is not None and beta != 0.0:
        c_ssa = self.ssa(c)
        if beta != 1.0:
            c_ssa = self.emit(nn.MulOp(c_ssa, self.scalar(beta, c_ssa)))
        y = self.emit(nn.AddOp(y, c_ssa))
    return [y]


# --------------------------------------------------------------------------------------
# Lowerings: convolutions and pooling
# --------------------------------------------------------------------------------------


def _window_pads(
    attrs: dict[str, Any],
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pooling: bool = False,
) -> list[int]:
    """ONNX `pads` (all begins, then all ends) after resolving `auto_pad`.

    SAME_* pads so that `output = ceil(input / stride)`, the odd pixel at the end
    (SAME_UPPER) or the beginning (SAME_LOWER), as the ONNX spec says. When the window
    is smaller than the stride the spec's padding is negative: a convolution then pads
    nothing (as onnxruntime does); pooling too, unless onnxruntime's split of the
    negative padding crops the beginning of the input, which we do not support.
    onnxruntime rejects dilated SAME convolutions and computes dilated SAME pooling
    from the undilated kernel; we follow the spec for convolutions and do not support
    dilated SAME pooling.
    """
    rank = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = _int_list(attrs.get("pads", [0] * (2 * rank)))
        if len(pads) != 2 * rank:
            raise _Unsupported(f"pads {pads} for {rank} spatial axes")
        return pads
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise _Unsupported(f"auto_pad={auto_pad}")
    if pooling and any(d != 1 for d in dilations):
        raise _Unsupported(f"auto_pad={auto_pad} with dilations")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = (out - 1) * s + (k - 1) * d + 1 - size
        if total < 0 and pooling:
            # onnxruntime's split (C++ division) of a negative total: a negative
            # begin crops the input, a negative end changes nothing.
            begin = int(total / 2) if auto_pad == "SAME_UPPER" else int((total + 1) / 2)
            if begin < 0:
                raise _Unsupported(
                    f"auto_pad={auto_pad} with a window smaller than the stride"
                )
        total = max(total, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _spatial_rank(x: SSAValue, what: str) -> int:
    rank = len(_shape(x)) - 2
    if rank not in (1, 2):
        raise _Unsupported(f"{rank}-D {what} (only 1-D and 2-D)")
    return rank


def _as_2d(values: Sequence[int], fill: int) -> tuple[int, int]:
    """A per-spatial-axis attribute of a 1-D op for the height-1 2-D op."""
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def _pads_2d(pads: Sequence[int]) -> tuple[int, int, int, int]:
    if len(pads) == 2:
        return (0, pads[0], 0, pads[1])
    return (pads[0], pads[1], pads[2], pads[3])


class _Height1:
    """Runs a 2-D op on 1-D operands: unsqueeze the listed operands at axis 2, squeeze
    the result."""

    def __init__(self, importer: _Importer, one_d: bool):
        self.importer, self.one_d = importer, one_d

    def operand(self, value: SSAValue) -> SSAValue:
        return self.importer.emit(nn.UnsqueezeOp(value, [2])) if self.one_d else value

    def result(self, value: SSAValue) -> SSAValue:
        return self.importer.emit(nn.SqueezeOp(value, [2])) if self.one_d else value


@_lowering(
    "Conv", ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]
)
def _conv(self: _Importer, node, ins, attrs):
    x, w = self.ssa(ins[0]), self.ssa(ins[1], "weight")
    bias = None if ins[2] is None else self.ssa(ins[2])
    rank = _spatial_rank(x, "convolution")
    kernel = _shape(w)[2:]
    strides = _int_list(attrs.get("strides", [1] * rank))
    dilations = _int_list(attrs.get("dilations", [1] * rank))
    pads = _window_pads(attrs, _shape(x)[2:], kernel, strides, dilations)
    h1 = _Height1(self, rank == 1)
    y = self.emit(
        nn.Conv2dOp(
            h1.operand(x),
            h1.operand(w),
            bias,
            stride=_as_2d(strides, 1),
            padding=_pads_2d(pads),
            dilation=_as_2d(dilations, 1),
            groups=int(attrs.get("group", 1)),
        )
    )
    return [h1.result(y)]


@_lowering(
    "ConvTranspose",
    [
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "output_padding",
        "output_shape",
        "pads",
        "strides",
    ],
)
def _conv_transpose(self: _Importer, node, ins, attrs):
    x, w = self.ssa(ins[0]), self.ssa(ins[1], "weight")
    bias = None if ins[2] is None else self.ssa(ins[2])
    rank = _spatial_rank(x, "transposed convolution")
    sizes, kernel = _shape(x)[2:], _shape(w)[2:]
    strides = _int_list(attrs.get("strides", [1] * rank))
    dilations = _int_list(attrs.get("dilations", [1] * rank))
    output_padding = _int_list(attrs.get("output_padding", [0] * rank))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise _Unsupported(f"auto_pad={auto_pad}")
    if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # The spec's total padding, split with the odd pixel at the end for SAME_UPPER
        # and at the beginning otherwise. An output_shape beyond the full result
        # extends it at the end (output_padding), as onnxruntime; without output_shape,
        # SAME never pads negatively.
        explicit = "output_shape" in attrs
        if explicit:
            wanted = _int_list(attrs["output_shape"])[-rank:]
        else:
            wanted = [size * s for size, s in zip(sizes, strides)]
        totals = [
            s * (size - 1) + p + (k - 1) * d + 1 - o
            for size, k, s, d, p, o in zip(
                sizes, kernel, strides, dilations, output_padding, wanted
            )
        ]
        if explicit:
            output_padding = [p - min(t, 0) for p, t in zip(output_padding, totals)]
        totals = [max(t, 0) for t in totals]
        if auto_pad == "SAME_UPPER":
            pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
        else:
            pads = [t - t // 2 for t in totals] + [t // 2 for t in totals]
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = _int_list(attrs.get("pads", [0] * (2 * rank)))
    h1 = _Height1(self, rank == 1)
    y = self.emit(
        nn.ConvTranspose2dOp(
            h1.operand(x),
            h1.operand(w),
            bias,
            stride=_as_2d(strides, 1),
            padding=_pads_2d(pads),
            output_padding=_as_2d(output_padding, 0),
            dilation=_as_2d(dilations, 1),
            groups=int(attrs.get("group", 1)),
        )
    )
    return [h1.result(y)]


def _pool_common(attrs: dict[str, Any], x: SSAValue):
    rank = _spatial_rank(x, "pooling")
    if "kernel_shape" not in attrs:
        raise _Unsupported("no kernel_shape")
    kernel = _int_list(attrs["kernel_shape"])
    strides = _int_list(attrs.get("strides", [1] * rank))
    dilations = _int_list(attrs.get("dilations", [1] * rank))
    pads = _window_pads(attrs, _shape(x)[2:], kernel, strides, dilations, pooling=True)
    return rank, kernel, strides, dilations, pads


@_lowering(
    "MaxPool",
    [
        "auto_pad",
        "ceil_mode",
        "dilations",
        "kernel_shape",
        "pads",
        "storage_order",
        "strides",
    ],
)
def _max_pool(self: _Importer, node, ins, attrs):
    # storage_order only affects the Indices output, which we do not provide.
    x = self.ssa(ins[0])
    rank, kernel, strides, dilations, pads = _pool_common(attrs, x)
    h1 = _Height1(self, rank == 1)
    y = self.emit(
        nn.MaxPool2dOp(
            h1.operand(x),
            _as_2d(kernel, 1),
            _as_2d(strides, 1),
            _pads_2d(pads),
            _as_2d(dilations, 1),
            bool(attrs.get("ceil_mode", 0)),
        )
    )
    return [h1.result(y)]


@_lowering(
    "AveragePool",
    [
        "auto_pad",
        "ceil_mode",
        "count_include_pad",
        "dilations",
        "kernel_shape",
        "pads",
        "strides",
    ],
)
def _avg_pool(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    rank, kernel, strides, dilations, pads = _pool_common(attrs, x)
    if any(d != 1 for d in dilations):
        raise _Unsupported(f"dilations={dilations}")
    h1 = _Height1(self, rank == 1)
    y = self.emit(
        nn.AvgPool2dOp(
            h1.operand(x),
            _as_2d(kernel, 1),
            _as_2d(strides, 1),
            _pads_2d(pads),
            bool(attrs.get("ceil_mode", 0)),
            bool(attrs.get("count_include_pad", 0)),
        )
    )
    return [h1.result(y)]


@_lowering("GlobalAveragePool")
def _global_avg_pool(self: _Importer, node, ins, attrs):
    return [self.emit(nn.GlobalAvgPoolOp(self.ssa(ins[0])))]


# --------------------------------------------------------------------------------------
# Lowerings: normalisations and softmax
# --------------------------------------------------------------------------------------


def _softmax_lowering(op: type[nn.SoftmaxOp] | type[nn.LogSoftmaxOp]) -> _Lowering:
    def lower(self: _Importer, node, ins, attrs):
        x = self.ssa(ins[0])
        shape = _shape(x)
        rank = len(shape)
        if self.opset >= 13:
            return [self.emit(op(x, _normalize(attrs.get("axis", -1), rank)))]
        # Before opset 13: softmax over the input coerced to 2-D at `axis`.
        axis = _normalize(attrs.get("axis", 1), rank)
        if all(d == 1 for d in shape[axis + 1 :]):
            return [self.emit(op(x, axis))]
        flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
        y = self.emit(op(self.emit(nn.ReshapeOp(x, flat)), 1))
        return [self.emit(nn.ReshapeOp(y, shape))]

    return lower


_lowering("Softmax", ["axis"])(_softmax_lowering(nn.SoftmaxOp))
_lowering("LogSoftmax", ["axis"])(_softmax_lowering(nn.LogSoftmaxOp))


@_lowering("LayerNormalization", ["axis", "epsilon", "stash_type"])
def _layer_norm(self: _Importer, node, ins, attrs):
    # stash_type selects the precision of the statistics; we compute in the input type.
    x = self.ssa(ins[0])
    shape = _shape(x)
    axis = _normalize(attrs.get("axis", -1), len(shape))
    epsilon = float(attrs.get("epsilon", 1e-5))
    normalized = shape[axis:]
    scale = self.ssa(ins[1], "scale")
    bias = None if ins[2] is None else self.ssa(ins[2])
    if _shape(scale) == normalized and (bias is None or _shape(bias) == normalized):
        if bias is None:
            bias = self._ssa(_Const(np.zeros(normalized, _dtype(x)), ""))
        return [self.emit(nn.LayerNormOp(x, scale, bias, axis, epsilon))]
    # Scale and bias that only broadcast to the normalized shape.
    ones = self._ssa(_Const(np.ones(normalized, _dtype(x)), ""))
    zeros = self._ssa(_Const(np.zeros(normalized, _dtype(x)), ""))
    y = self.emit(nn.LayerNormOp(x, ones, zeros, axis, epsilon))
    y = self.emit(nn.MulOp(y, scale))
    if bias is not None:
        y = self.emit(nn.AddOp(y, bias))
    if _shape(y) != shape:
        raise _Unsupported("scale or bias broadcast beyond the input shape")
    return [y]


def _dtype(value: SSAValue) -> np.dtype:
    assert isinstance(value.type, TensorType)
    return numpy_dtype(value.type.element_type)


@_lowering(
    "BatchNormalization", ["epsilon", "momentum", "training_mode", "spatial", "is_test"]
)
def _batch_norm(self: _Importer, node, ins, attrs):
    if attrs.get("training_mode", 0):
        raise _Unsupported("training_mode=1 (import the inference graph)")
    if not attrs.get("spatial", 1):
        raise _Unsupported("spatial=0")
    x = self.ssa(ins[0])
    operands = [self.ssa(v, "statistic") for v in ins[1:5]]
    if len(operands) != 4:
        raise _Unsupported("fewer than 5 inputs")
    return [
        self.emit(
            nn.BatchNormOp(x, *operands, epsilon=float(attrs.get("epsilon", 1e-5)))
        )
    ]


# --------------------------------------------------------------------------------------
# Lowerings: shapes
# --------------------------------------------------------------------------------------


def _reshaped(self: _Importer, x: SSAValue, shape: Sequence[int]) -> SSAValue:
    shape = tuple(int(d) for d in shape)
    if any(d < 1 for d in shape):
        raise _Unsupported(f"empty result shape {list(shape)}")
    if shape == _shape(x):
        return x
    return self.emit(nn.ReshapeOp(x, shape))


def _evaluated_shape(self: _Importer, node: onnx.NodeProto, ins) -> tuple[int, ...]:
    """Output shape of a shape op, by the reference evaluator on a stand-in input
    (keeps ONNX's rules for 0, -1 and allowzero in one place: the spec's code)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {}
    for name, value in zip(node.input, ins):
        if not name:
            continue
        if isinstance(value, _Const):
            feeds[name] = value.array
        else:
            shape, dtype = self._shape_and_dtype(value)
            feeds[name] = np.broadcast_to(np.zeros((), dtype), shape)
    try:
        (result,) = ReferenceEvaluator(node, opsets=self.opsets).run(None, feeds)[:1]
    except Exception as e:
        raise ShapeError(first_line(e)) from None
    return tuple(np.shape(result))


@_lowering("Reshape", ["allowzero"])
def _reshape(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    self.constant(ins[1], "shape")
    return [_reshaped(self, x, _evaluated_shape(self, node, ins))]


@_lowering("Flatten", ["axis"])
def _flatten(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    return [_reshaped(self, x, _evaluated_shape(self, node, ins))]


@_lowering("Transpose", ["perm"])
def _transpose(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    rank = len(_shape(x))
    perm = _int_list(attrs.get("perm", list(reversed(range(rank)))))
    if perm == list(range(rank)):
        return [x]
    return [self.emit(nn.TransposeOp(x, perm))]


def _axes(self: _Importer, ins, attrs, since: int, what: str) -> list[int] | None:
    """`axes` from the attribute (opset < since) or the second input."""
    if self.opset < since:
        return _int_list(attrs["axes"]) if "axes" in attrs else None
    if "axes" in attrs:
        raise _Unsupported(f"axes attribute (an input since opset {since})")
    value = ins[1]
    return None if value is None else _int_list(self.constant(value, what))


@_lowering("Squeeze", ["axes"])
def _squeeze(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    shape = _shape(x)
    axes = _axes(self, ins, attrs, 13, "axes")
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = sorted(shapes.normalize_axes(axes, len(shape)))
    if not axes:
        return [x]
    return [self.emit(nn.SqueezeOp(x, axes))]


@_lowering("Unsqueeze", ["axes"])
def _unsqueeze(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    axes = _axes(self, ins, attrs, 13, "axes")
    if not axes:
        raise _Unsupported("no axes")
    axes = sorted(shapes.normalize_axes(axes, len(_shape(x)) + len(axes)))
    return [self.emit(nn.UnsqueezeOp(x, axes))]


@_lowering("Concat", ["axis"])
def _concat(self: _Importer, node, ins, attrs):
    values = [self.ssa(v) for v in ins if v is not None]
    if "axis" not in attrs:
        raise _Unsupported("no axis")
    axis = _normalize(attrs["axis"], len(_shape(values[0])))
    if len(values) == 1:
        return [values[0]]
    return [self.emit(nn.ConcatOp(values, axis))]


@_lowering("Slice", ["starts", "ends", "axes"])
def _slice(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    shape = _shape(x)
    rank = len(shape)
    if self.opset < 10:
        if "starts" not in attrs or "ends" not in attrs:
            raise _Unsupported("no starts or ends")
        starts, ends = _int_list(attrs["starts"]), _int_list(attrs["ends"])
        axes = _int_list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        if attrs:
            raise _Unsupported("attributes (inputs since opset 10)")

        def optional(index: int, what: str) -> list[int] | None:
            value = ins[index]
            return None if value is None else _int_list(self.constant(value, what))

        starts = optional(1, "starts")
        ends = optional(2, "ends")
        if starts is None or ends is None:
            raise _Unsupported("missing starts or ends")
        axes = optional(3, "axes")
        axes = list(range(len(starts))) if axes is None else axes
        steps = optional(4, "steps") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("starts, ends, axes and steps differ in length")
    begin, end, step = [0] * rank, list(shape), [1] * rank
    for axis, a, b, s in zip(shapes.normalize_axes(axes, rank), starts, ends, steps):
        if s == 0:
            raise ShapeError(f"step 0 on axis {axis}")
        # ONNX Slice clamps exactly as Python's slice.indices does.
        lo, hi, s = slice(a, b, s).indices(shape[axis])
        if len(range(lo, hi, s)) == 0:
            raise _Unsupported(f"empty slice on axis {axis}")
        begin[axis], end[axis], step[axis] = lo, hi, s
    if begin == [0] * rank and end == list(shape) and step == [1] * rank:
        return [x]
    return [self.emit(nn.SliceOp(x, begin, end, step))]


def _reduce_lowering(op: type[nn.ReduceMeanOp] | type[nn.ReduceSumOp], since: int):
    def lower(self: _Importer, node, ins, attrs):
        x = self.ssa(ins[0])
        rank = len(_shape(x))
        axes = _axes(self, ins, attrs, since, "axes")
        if not axes:
            if attrs.get("noop_with_empty_axes", 0) or rank == 0:
                return [x]
            axes = list(range(rank))
        axes = sorted(shapes.normalize_axes(axes, rank))
        return [self.emit(op(x, axes, bool(attrs.get("keepdims", 1))))]

    return lower


_lowering("ReduceMean", ["axes", "keepdims", "noop_with_empty_axes"])(
    _reduce_lowering(nn.ReduceMeanOp, 18)
)
_lowering("ReduceSum", ["axes", "keepdims", "noop_with_empty_axes"])(
    _reduce_lowering(nn.ReduceSumOp, 13)
)


# --------------------------------------------------------------------------------------
# Lowerings: identities
# --------------------------------------------------------------------------------------


@_lowering("Identity")
def _identity(self: _Importer, node, ins, attrs):
    return [ins[0]]


@_lowering("Dropout", ["ratio", "seed", "is_test"])
def _dropout(self: _Importer, node, ins, attrs):
    """Inference: the identity (the mask output is not provided)."""
    training = ins[2]
    if training is not None and bool(np.any(self.constant(training, "training_mode"))):
        raise _Unsupported("training_mode=true")
    return [ins[0]]
