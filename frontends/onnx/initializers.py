"""What each initializer of an ONNX graph becomes: a trainable or frozen parameter, a
constant of the graph, or nothing (the graph input of the same name wins, or nobody
reads it); and which parameters the exporter shared between layers, untied or kept.

The rules are in the docstring of `edge_opt.frontends.onnx` ("Initializers"); every
decision is recorded, with its reason, in an `ImportSummary` (what `edge-opt import`
prints).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx

from edge_opt.frontends.onnx.names import sanitize_name
from edge_opt.support.errors import UserError

Kind = Literal["trainable", "frozen", "constant", "input", "unused"]
Untie = Literal["merged", "all", "none"]
"""Which shared initializers the import unties: `merged` (default) those the exporter
merged through `Identity` nodes, `all` also those read directly by several layers,
`none` keeps the file's sharing."""

STATISTIC = "running statistic"

LAYER_ROLES: dict[str, dict[int, str]] = {
    "Conv": {1: "weight", 2: "bias"},
    "ConvTranspose": {1: "weight", 2: "bias"},
    "Gemm": {1: "weight", 2: "bias"},
    "MatMul": {1: "weight"},
    "BatchNormalization": {1: "scale", 2: "bias", 3: STATISTIC, 4: STATISTIC},
    "LayerNormalization": {1: "scale", 2: "bias"},
    "GroupNormalization": {1: "scale", 2: "bias"},
    "InstanceNormalization": {1: "scale", 2: "bias"},
    "PRelu": {1: "slope"},
    "Gather": {0: "embedding table"},
}
"""The inputs of layer ops that hold the layer's state (default-domain ops)."""

_LAYER_RESULTS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose"})
"""An Add/Sub operand next to the result of one of these is the layer's bias."""

VIEW_OPS = frozenset(
    {
        "Identity", "Dropout", "Transpose", "Reshape", "Squeeze", "Unsqueeze",
        "Flatten", "Expand", "Cast", "Slice", "Split", "Tile",
    }
)
"""Ops whose first input plays the role its result plays (a transposed weight is a
weight)."""

_SHAPE_READERS = frozenset({"Shape", "Size"})
"""They read only the static shape: not a use of the value."""


@dataclass(frozen=True)
class Use:
    """Where an initializer's value is read (after views): the node, the input index
    and the role there (`weight`, `bias`, ... or None for a plain operand)."""

    node: onnx.NodeProto
    index: int
    role: str | None

    def describe(self) -> str:
        what = self.role or f"input {self.index}"
        return f"{what} of {self.node.op_type} '{node_label(self.node)}'"


@dataclass(frozen=True)
class Decision:
    """What one initializer became, and why."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: Kind
    reason: str


@dataclass
class ImportSummary:
    """The import's decisions about initializers (see the module docstring).

    - `decisions`: one per initializer (and per untied copy), in file order;
    - `untied`: initializer -> the new parameters (ONNX names) it was split into;
    - `shared`: trainable parameter kept shared -> the layers that read it;
    - `symbols`: ONNX name -> `nn.param` symbol of every parameter;
    - `warnings`: what the user should know (shared parameters kept tied).
    """

    decisions: list[Decision] = field(default_factory=list)
    untied: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, list[str]] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of_kind(self, kind: Kind) -> list[Decision]:
        return [d for d in self.decisions if d.kind == kind]


def node_label(node: onnx.NodeProto) -> str:
    if node.name:
        return node.name
    outputs = [o for o in node.output if o]
    return f"<unnamed, output {outputs[0]}>" if outputs else "<unnamed>"


def compile_trainable(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UserError(
            f"--trainable '{pattern}' is not a regular expression: {e}"
        ) from None


class InitializerPlan:
    """The decisions about the initializers of one graph.

    Built from the sorted nodes and the initializer values, it first unties the
    exporter's `Identity` merges (policy `merged` or `all`); `input_wins` then names the
    initializers that give way to a graph input; `decide(batch)` classifies the rest and,
    with policy `all`, unties the parameters several layers read directly. `nodes` and
    `initializers` are the graph to import afterwards.
    """

    def __init__(
        self,
        nodes: Sequence[onnx.NodeProto],
        initializers: Mapping[str, np.ndarray],
        graph_inputs: Sequence[str],
        graph_outputs: Sequence[str],
        untie: Untie = "merged",
        trainable: re.Pattern[str] | None = None,
    ):
        if untie not in ("merged", "all", "none"):
            raise UserError(f"untie must be merged, all or none, not '{untie}'")
        self.nodes = list(nodes)
        self.initializers = dict(initializers)
        self.graph_inputs = set(graph_inputs)
        self.graph_outputs = set(graph_outputs)
        self.untie = untie
        self.trainable = trainable
        self.summary = ImportSummary()
        self._order = list(initializers)
        self._untied_from: dict[str, str] = {}  # untied copy -> the initializer it was
        self._index()
        if untie != "none":
            self._untie_identities()

    # ---- the graph -------------------------------------------------------------------

    def _index(self) -> None:
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.nodes:
            for index, name in enumerate(node.input):
                if name:
                    self.consumers[name].append((node, index))
            for name in node.output:
                if name:
                    self.producer[name] = node

    def uses(self, name: str, seen: frozenset[str] = frozenset()) -> Iterator[Use]:
        """Every read of `name`, looking through views (`VIEW_OPS`, input 0)."""
        for node, index in self.consumers.get(name, []):
            if node.op_type in _SHAPE_READERS:
                continue
            if node.op_type in VIEW_OPS and index == 0 and _default_domain(node):
                for output in node.output:
                    if output and output not in seen:
                        yield from self.uses(output, seen | {output})
                continue
            yield Use(node, index, self._role(node, index))

    def _role(self, node: onnx.NodeProto, index: int) -> str | None:
        if not _default_domain(node):
            return None
        role = LAYER_ROLES.get(node.op_type, {}).get(index)
        if role is not None:
            return role
        if node.op_type in ("Add", "Sub") and index in (0, 1) and len(node.input) == 2:
            producer = self.producer.get(node.input[1 - index])
            if producer is not None and producer.op_type in _LAYER_RESULTS:
                return "bias"
        return None

    # ---- untying ---------------------------------------------------------------------

    def _untie_identities(self) -> None:
        """`Identity(initializer) -> name`, read by other nodes, is how the TorchScript
        exporter records that it merged equal-valued initializers (a zero bias, a unit
        norm scale): the output name is the merged parameter's own. It becomes that
        parameter again."""
        kept = []
        for node in self.nodes:
            source = node.input[0] if node.op_type == "Identity" and node.input else ""
            output = node.output[0] if node.output else ""
            array = self.initializers.get(source)
            if (
                array is None
                or not _default_domain(node)
                or array.dtype.kind != "f"
                or array.ndim == 0
                or source in self.graph_inputs
                or not output
                or output in self.graph_outputs
                or not self.consumers.get(output)
            ):
                kept.append(node)
                continue
            self.initializers[output] = array
            self._order.append(output)
            original = self._original(source)
            self.summary.untied.setdefault(original, []).append(output)
            self._untied_from[output] = original
        if len(kept) != len(self.nodes):
            self.nodes = kept
            self._index()

    def _original(self, name: str) -> str:
        return self._untied_from.get(name, name)

    def _untie_direct(self, name: str, decision: Decision) -> list[Decision]:
        """Gives every node after the first that reads `name` directly its own copy."""
        readers = list(
            dict.fromkeys(
                id(n) for n, _ in self.consumers.get(name, [])
                if n.op_type not in _SHAPE_READERS
            )
        )
        if len(readers) < 2:
            return []
        by_id = {id(n): n for n in self.nodes}
        taken = set(self.initializers) | set(self.producer) | self.graph_inputs
        copies = []
        for k, reader in enumerate(readers[1:], start=1):
            copy_name = _free(f"{name}_{k}", taken)
            taken.add(copy_name)
            node = by_id[reader]
            replacement = onnx.NodeProto()
            replacement.CopyFrom(node)
            for i, input_name in enumerate(replacement.input):
                if input_name == name:
                    replacement.input[i] = copy_name
            self.nodes[self.nodes.index(node)] = replacement
            self.initializers[copy_name] = self.initializers[name]
            self._untied_from[copy_name] = self._original(name)
            self.summary.untied.setdefault(self._original(name), []).append(copy_name)
            copies.append(
                Decision(copy_name, decision.shape, decision.dtype, decision.kind,
                         f"untied from '{name}' (--untie-shared)")
            )
        self._index()
        return copies

    # ---- decisions -------------------------------------------------------------------

    def input_wins(self) -> set[str]:
        """Initializers named like a graph input that do not serve as a layer's state:
        the input wins (onnxruntime: an initializer is an input's default value)."""
        wins = set()
        for name in self.initializers:
            if name not in self.graph_inputs or self._forced(name):
                continue
            if not any(u.role is not None for u in self.uses(name)):
                wins.add(name)
        return wins

    def _forced(self, name: str) -> bool:
        if self.trainable is None:
            return False
        return bool(
            self.trainable.fullmatch(name) or self.trainable.fullmatch(sanitize_name(name))
        )

    def decide(self, batch: int | None) -> dict[str, Decision]:
        """The decision for every initializer (untied copies included), by name."""
        wins = self.input_wins()
        self._check_trainable_pattern()
        decisions: dict[str, Decision] = {}
        for name in list(self._order):
            array = self.initializers[name]
            if name in wins:
                kind: Kind = "input"
                reason = (
                    "a graph input has the same name: the input wins (as in "
                    "onnxruntime), the initializer is ignored"
                )
            else:
                kind, reason = self._classify(name, array, batch)
                if name in self._untied_from:
                    reason += (
                        f"; untied from '{self._untied_from[name]}', which the exporter "
                        "had merged it with"
                    )
            decision = Decision(name, tuple(array.shape), str(array.dtype), kind, reason)
            decisions[name] = decision
            if self.untie == "all" and kind in ("trainable", "frozen"):
                for copy in self._untie_direct(name, decision):
                    decisions[copy.name] = copy
        self.summary.decisions = list(decisions.values())
        self._warn_shared(decisions)
        return decisions

    def _classify(
        self, name: str, array: np.ndarray, batch: int | None
    ) -> tuple[Kind, str]:
        uses = list(self.uses(name))
        if not uses and name not in self.graph_outputs:
            return "unused", "no node reads it"
        if self._forced(name):
            if array.dtype.kind != "f":
                raise UserError(
                    f"--trainable matches initializer '{name}', which is {array.dtype}: "
                    "only float initializers can train"
                )
            return "trainable", "--trainable matches it"
        if array.dtype.kind != "f":
            return "constant", f"{array.dtype}: a shape or index argument"
        if array.ndim == 0:
            return "constant", "rank 0: a literal of the computation"
        layer = [u for u in uses if u.role not in (None, STATISTIC)]
        if layer:
            return "trainable", layer[0].describe()
        if uses and all(u.role == STATISTIC for u in uses):
            return "frozen", uses[0].describe()
        where = uses[0].describe() if uses else "a graph output"
        if array.size == 1:
            return "constant", (
                f"one element, {where}: a literal (a scale, an exponent, an epsilon), "
                "not a layer's bias"
            )
        if batch is not None and array.ndim >= 2 and array.shape[0] == batch:
            return "frozen", (
                f"its first dimension is the batch size {batch}: a value the exporter "
                "already expanded to the batch (a class token, a mask), not the "
                "model's parameter"
            )
        return "trainable", f"{where}: state of the model"

    def _check_trainable_pattern(self) -> None:
        if self.trainable is None:
            return
        if not any(self._forced(name) for name in self.initializers):
            names = ", ".join(list(self.initializers)[:6])
            raise UserError(
                f"--trainable '{self.trainable.pattern}' matches no initializer (the "
                f"model has {len(self.initializers)}: {names}"
                f"{', ...' if len(self.initializers) > 6 else ''})"
            )

    def _warn_shared(self, decisions: Mapping[str, Decision]) -> None:
        for name, decision in decisions.items():
            if decision.kind != "trainable":
                continue
            readers = list(dict.fromkeys(id(u.node) for u in self.uses(name)))
            if len(readers) < 2:
                continue
            labels = list(
                dict.fromkeys(
                    f"{u.node.op_type} '{node_label(u.node)}'" for u in self.uses(name)
                )
            )
            self.summary.shared[name] = labels
            shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
            self.summary.warnings.append(
                f"parameter '{name}' is shared by {len(labels)} layers ({shown}): "
                "training moves them together. If the exporter merged equal-valued "
                "tensors (as onnx optimizers do), import with --untie-shared "
                "(untie='all')"
            )


def _default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def _free(base: str, taken: set[str]) -> str:
    candidate, suffix = base, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{base}_{suffix}"
    return candidate


def batch_size(shapes: Sequence[tuple[int, ...]]) -> int | None:
    """The batch size of the graph: the first dimension all inputs of rank >= 2 share,
    if there is one and it is above 1 (with batch 1 an expanded value and the parameter
    it came from are the same thing)."""
    firsts = {s[0] for s in shapes if len(s) >= 2}
    if len(firsts) != 1:
        return None
    (batch,) = firsts
    return batch if batch > 1 else None


def format_summary(summary: ImportSummary, verbose: bool = False) -> str:
    """The decisions as `edge-opt import` prints them: counts per kind, then every
    float initializer that does not train (and with `verbose`, every initializer) with
    its reason, then the untied parameters."""
    counts = {k: len(summary.of_kind(k)) for k in _KIND_LABELS}
    lines = [
        "initializers: "
        + ", ".join(f"{n} {_KIND_LABELS[k]}" for k, n in counts.items() if n)
    ]
    for d in summary.decisions:
        quiet = d.kind == "trainable" or (d.kind == "constant" and "float" not in d.dtype)
        if quiet and not verbose:
            continue
        symbol = summary.symbols.get(d.name)
        named = d.name if symbol in (None, d.name) else f"{d.name} (@{symbol})"
        shape = "x".join(map(str, d.shape)) or "scalar"
        lines.append(f"  {d.kind:<9} {named} {d.dtype}[{shape}]: {d.reason}")
    if summary.untied:
        copies = sum(len(v) for v in summary.untied.values())
        lines.append(
            f"untied {copies} parameter(s) from {len(summary.untied)} shared "
            "initializer(s) (--keep-shared keeps them shared):"
        )
        for original, names in summary.untied.items():
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            lines.append(f"  {original} -> {shown}")
    return "\n".join(lines) + "\n"


_KIND_LABELS: dict[Kind, str] = {
    "trainable": "trainable parameter(s)",
    "frozen": "frozen parameter(s)",
    "constant": "constant(s)",
    "input": "left to the graph input of the same name",
    "unused": "unused",
}
