"""`rules`: rewrites `nn` graphs with the declarative rules of a rule file.

    edge-opt model.mlir -p 'rules{file=my.rules}'

Each rule of the file (docs/rewrite-rules.md; parsed and checked when the pass starts by
`edge_opt.passes.rule_language`) becomes one `RulePattern`, a `RewritePattern` on the
class of the rule's root op. A match binds the pattern's names to SSA values and
attribute values, checks the conditions, builds the replacement ops with the `nn`
builders (which infer their result types) and replaces the root only if the
replacement's type equals the root's result type; otherwise the built ops are dropped
and the rule does not fire. The operands of a commutative op (`Commutative` trait:
`add`, `mul`) match in either order: the given order first, and the swapped one when
the first does not match, fails a condition or does not fit. Rules are tried in file order at each op; the first that
fires wins.

An op a rule created is never the root of another rewrite in the same run (it may be an
inner op of a later match), so every rule file terminates: `add(x, y) => add(y, x)`
fires once per original op instead of forever. Run the pass again to rewrite the
results of rewrites. Dead ops left behind are removed (`dce`) at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.traits import Commutative, SymbolTable
from xdsl.transforms.dead_code_elimination import region_dce
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn
from edge_opt.passes.rule_language import (
    AttributeTerm,
    AttributeVariable,
    Compare,
    Condition,
    ConstantPattern,
    IsKind,
    Literal,
    PatternNode,
    Query,
    Replacement,
    Rule,
    Term,
    ValuePattern,
    ValueUse,
    load_rules,
)
from edge_opt.passes.rule_ops import Arity, AttributeInfo, Kind, attribute_value
from edge_opt.support.shapes import ShapeError


@dataclass
class Bindings:
    """What a match bound: tensors (SSA values) and attributes (builder values)."""

    values: dict[str, SSAValue] = field(default_factory=dict)
    attributes: dict[str, object] = field(default_factory=dict)

    def copy(self) -> Bindings:
        return Bindings(dict(self.values), dict(self.attributes))

    def with_value(self, name: str, value: SSAValue) -> Bindings:
        bound = self.copy()
        bound.values[name] = value
        return bound


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------


def _same(a: object, b: object, kind: Kind) -> bool:
    """Equality of two attribute values; f32 scalars compare at f32 precision (a
    property holds `0.1` as the nearest f32)."""
    if kind is Kind.FLOAT and a is not None and b is not None:
        return bool(np.float32(a) == np.float32(b))  # type: ignore[arg-type]
    return a == b


def _match_attribute(term: AttributeTerm, value: object, info: AttributeInfo,
                     bindings: Bindings) -> bool:
    if isinstance(term, Literal):
        return _same(term.value, value, info.kind)
    if term.name in bindings.attributes:
        return _same(bindings.attributes[term.name], value, info.kind)
    bindings.attributes[term.name] = value
    return True


def _is_splat(value: SSAValue, number: float) -> bool:
    array = nn.constant_array(value)
    return array is not None and bool(np.all(array == np.asarray(number, array.dtype)))


def matches(node: PatternNode, value: SSAValue, bindings: Bindings) -> Iterator[Bindings]:
    """Every way `value` matches `node`, each the bindings extended (`bindings` itself
    is left alone): one at most, but for a commutative op (`add`, `mul`) whose operands
    may match in either order, two."""
    if isinstance(node, ValuePattern):
        if node.name is None:
            yield bindings
        elif node.name not in bindings.values:
            yield bindings.with_value(node.name, value)
        elif bindings.values[node.name] is value:
            yield bindings
        return
    if isinstance(node, ConstantPattern):
        if _is_splat(value, node.value):
            yield bindings
        return
    op = value.owner
    if not isinstance(op, node.info.cls) or len(op.operands) != len(node.operands):
        return
    bound = bindings.copy()
    for name, term in node.attributes:
        info = node.info.attributes[name]
        actual = attribute_value(op.properties.get(name), info.kind)
        if actual is None:
            actual = info.default
        if not _match_attribute(term, actual, info, bound):
            return
    if node.bind is not None and bound.values.setdefault(node.bind, value) is not value:
        return
    for operands in _operand_orders(op):
        yield from _match_operands(node.operands, operands, bound)


def _operand_orders(op: Operation) -> list[tuple[SSAValue, ...]]:
    """The op's operands, then, for a commutative op of two different operands, the
    swapped pair."""
    operands = tuple(op.operands)
    if (op.has_trait(Commutative) and len(operands) == 2
            and operands[0] is not operands[1]):
        return [operands, operands[::-1]]
    return [operands]


def _match_operands(children: Sequence[PatternNode], operands: Sequence[SSAValue],
                    bindings: Bindings) -> Iterator[Bindings]:
    if not children:
        yield bindings
        return
    for bound in matches(children[0], operands[0], bindings):
        yield from _match_operands(children[1:], operands[1:], bound)


# --------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------


class _NoValue(Exception):
    """A condition asked `value(x)` of a value that is not a splat constant."""


def _query(query: Query, value: SSAValue) -> object:
    type = value.type
    assert isinstance(type, TensorType)
    shape = tuple(type.get_shape())
    if query.function == "rank":
        return len(shape)
    if query.function == "shape":
        return shape
    if query.function == "dim":
        if not -len(shape) <= query.index < len(shape):
            raise _NoValue
        return shape[query.index]
    if query.function == "dtype":
        return type.element_type
    if query.function == "type":
        return type
    if query.function == "uses":
        return len(list(value.uses))
    array = nn.constant_array(value)  # value(x)
    if array is None or array.size == 0 or not np.all(array == array.flat[0]):
        raise _NoValue
    return float(array.flat[0])


def _term(term: Term, bindings: Bindings) -> object:
    if isinstance(term, Literal):
        return term.value
    if isinstance(term, AttributeVariable):
        return bindings.attributes[term.name]
    return _query(term, bindings.values[term.name])


def _equal(a: object, b: object) -> bool:
    """`==` of a condition: a list against a number compares every element."""
    if isinstance(a, tuple) and not isinstance(b, tuple):
        return all(x == b for x in a)
    if isinstance(b, tuple) and not isinstance(a, tuple):
        return all(a == y for y in b)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return bool(np.float32(a) == np.float32(b))  # type: ignore[arg-type]
    return a == b


def _compare(condition: Compare, bindings: Bindings) -> bool:
    lhs, rhs = _term(condition.lhs, bindings), _term(condition.rhs, bindings)
    operator = condition.operator
    if operator == "==":
        return _equal(lhs, rhs)
    if operator == "!=":
        return not _equal(lhs, rhs)
    if lhs is None or rhs is None:  # an absent optional attribute orders with nothing
        return False
    return {
        "<": lhs < rhs, "<=": lhs <= rhs, ">": lhs > rhs, ">=": lhs >= rhs,  # type: ignore[operator]
    }[operator]


def _is_kind(condition: IsKind, bindings: Bindings) -> bool:
    value = bindings.values[condition.name]
    owner = value.owner
    if condition.kind == "constant":
        holds = isinstance(owner, nn.ConstantOp)
    elif not isinstance(owner, nn.LoadOp):
        holds = False
    elif condition.kind == "parameter":
        holds = True
    else:
        param = SymbolTable.lookup_symbol(owner, owner.param)
        trainable = isinstance(param, nn.ParamOp) and param.is_trainable
        holds = trainable == (condition.kind == "trainable parameter")
    return holds != condition.negated


def holds(condition: Condition, bindings: Bindings) -> bool:
    """Whether a condition holds for a match."""
    try:
        if isinstance(condition, IsKind):
            return _is_kind(condition, bindings)
        return _compare(condition, bindings)
    except _NoValue:
        return False


# --------------------------------------------------------------------------------------
# Building the replacement
# --------------------------------------------------------------------------------------


class _DoesNotFit(Exception):
    """A builder rejected the operands of this match (shapes, element types)."""


def _attribute_argument(term: AttributeTerm, bindings: Bindings, info: AttributeInfo
                        ) -> object:
    value = term.value if isinstance(term, Literal) else bindings.attributes[term.name]
    if info.kind is Kind.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if info.kind is Kind.INTS and isinstance(value, tuple):
        return list(value)
    return value


def _build(node: Replacement, bindings: Bindings, built: list[Operation]) -> SSAValue:
    """The value of `node`, appending new ops to `built` (operands first)."""
    if isinstance(node, ValueUse):
        return bindings.values[node.name]
    operands = [_build(child, bindings, built) for child in node.operands]
    arguments: dict[str, object] = {}
    slots = node.info.operand_slots(len(operands))
    for slot, operand in zip(slots, operands, strict=True):
        if slot.arity is Arity.VARIADIC:
            arguments.setdefault(slot.name, []).append(operand)  # type: ignore[union-attr]
        else:
            arguments[slot.name] = operand
    for name, term in node.attributes:
        arguments[name] = _attribute_argument(term, bindings, node.info.attributes[name])
    try:
        op = node.info.cls(**arguments)
        built.append(op)
        op.verify()
    except (ShapeError, VerifyException) as e:
        raise _DoesNotFit from e
    return op.results[0]


def _drop(ops: list[Operation]) -> None:
    """Unlinks ops that were built but not inserted (their operands' uses)."""
    for op in reversed(ops):
        op.drop_all_references()


class RulePattern(RewritePattern):
    """One rule: matches its root op class, checks the rule, builds the replacement,
    and replaces the root when the types agree."""

    def __init__(self, rule: Rule, created: set[Operation]):
        self.rule = rule
        self.created = created
        """Ops rules built in this run: never roots (see the module docstring)."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        rule = self.rule
        if not isinstance(op, rule.pattern.info.cls) or op in self.created:
            return
        for bindings in matches(rule.pattern, op.results[0], Bindings()):
            if not all(holds(c, bindings) for c in rule.conditions):
                continue
            built: list[Operation] = []
            try:
                value = _build(rule.replacement, bindings, built)
            except _DoesNotFit:
                _drop(built)
                continue
            if value is op.results[0]:  # `PATTERN as y => y`: nothing to do
                return
            if value.type != op.results[0].type:
                _drop(built)
                continue
            self.created.update(built)
            rewriter.replace(op, built, [value])
            return


def rule_patterns(rules: tuple[Rule, ...]) -> list[RewritePattern]:
    """One pattern per rule, in file order, sharing the set of created ops."""
    created: set[Operation] = set()
    return [RulePattern(rule, created) for rule in rules]


@dataclass(frozen=True)
class ApplyRulesPass(ModulePass):
    """Applies the rewrite rules of `file` (docs/rewrite-rules.md) to every function,
    then removes dead ops.

    The file is read and checked before anything is rewritten: a syntax error, an
    unknown op or attribute, a wrong operand count, an unbound name or a replacement
    that cannot type-check is a `UserError` `file:line:column: message`.
    """

    name = "rules"

    file: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        rules = load_rules(self.file)
        walker = PatternRewriteWalker(GreedyRewritePatternApplier(rule_patterns(rules)))
        walker.rewrite_module(op)
        for region in op.regions:
            region_dce(region)


__all__ = ["ApplyRulesPass", "Bindings", "RulePattern", "holds", "matches", "rule_patterns"]
