"""The rewrite-rule language: its grammar, parser and load-time checker.

A rule file holds rules `[name:] PATTERN => REPLACEMENT [where CONDITION, ...]` over the
`nn` dialect (docs/rewrite-rules.md is the reference; `GRAMMAR` below is the grammar).
`load_rules(path)` parses a file with lark and compiles each rule into a `Rule`: a
pattern tree of op classes, operand bindings and attribute constraints, a replacement
tree of ops to build, and conditions. `edge_opt.passes.rules` matches and rewrites.

Everything that can be checked without a module is checked here, when the file is
loaded, and reported as a `UserError` `file:line:column: message`: the syntax, op names,
operand counts, attribute names and the kinds of their values, required attributes of
a replacement op, unbound names, what each name is (a tensor or an attribute), the
kinds compared in a condition, and element types that can never agree (a float-only
op on a value the conditions say is an integer tensor). Shapes are not known before a
match: the replacement's builders infer its type then, and a rule fires only if that
type equals the matched root's.

What the language knows of each op comes from its IRDL definition
(`edge_opt.passes.rule_ops`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    bf16,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute

from edge_opt.passes.rule_ops import OP_INFOS, AttributeInfo, Kind, OpInfo
from edge_opt.support.errors import UserError, read_user_file

GRAMMAR = r"""
start: rule*

rule: [NAME ":"] expr "=>" expr [_WHERE condition (("and" | ",") condition)*]
_WHERE.2: "where" | "when"

?condition: expr COMPARE expr                 -> compare
          | NAME "is" [NOT] [ARTICLE] kind    -> is_kind
kind: "parameter"                             -> parameter
    | "trainable" "parameter"                 -> trainable_parameter
    | "frozen" "parameter"                    -> frozen_parameter
    | "constant"                              -> constant

?expr: atom
     | atom "as" NAME                         -> bind
?atom: NAME "(" [arg ("," arg)*] ")"          -> call
     | NAME                                   -> name
     | SIGNED_NUMBER                          -> number
     | "[" [expr ("," expr)*] "]"             -> list
     | ESCAPED_STRING                         -> string
?arg: expr
    | NAME "=" expr                           -> keyword

NAME: /[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*/
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
NOT.2: "not"
ARTICLE.2: "an" | "a"
COMMENT: /#[^\n]*/

%import common.SIGNED_NUMBER
%import common.ESCAPED_STRING
%import common.WS
%ignore WS
%ignore COMMENT
"""
"""The grammar of rule files, in lark's EBNF (LALR(1)); `#` starts a comment."""



@cache
def _parser() -> Lark:
    """The LALR parser of `GRAMMAR`, built on first use (it takes ~50 ms, which every
    `edge-opt` run would pay at import)."""
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)


_TERMINAL_WORDS = {
    "NAME": "a name",
    "SIGNED_NUMBER": "a number",
    "ESCAPED_STRING": "a string",
    "COMPARE": "a comparison (==, !=, <, <=, >, >=)",
    "ARTICLE": "'a'",
    "_WHERE": "'where'",
    "$END": "end of file",
}

ELEMENT_TYPES: dict[str, Attribute] = {
    "f16": f16, "bf16": bf16, "f32": f32, "f64": f64,
    "i1": i1, "i8": i8, "i16": i16, "i32": i32, "i64": i64,
}
"""The element types a condition may name (`dtype(x) == f32`)."""

FUNCTIONS: dict[str, Kind] = {
    "rank": Kind.INT,
    "shape": Kind.INTS,
    "dim": Kind.INT,
    "dtype": Kind.ELEMENT_TYPE,
    "type": Kind.TENSOR_TYPE,
    "uses": Kind.INT,
    "value": Kind.FLOAT,
}
"""The functions of a tensor a condition may compare: `dim(x, i)` is `shape(x)[i]`,
`uses(x)` the number of uses of the value, `value(x)` the one value of a splat
`nn.constant` (a rule whose condition reads `value(x)` does not match otherwise)."""

_FLOAT_TYPES = (Float16Type, BFloat16Type, Float32Type, Float64Type)

# --------------------------------------------------------------------------------------
# Compiled rules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A value written in the file: int, float, tuple of ints, bool, str or an element
    type."""

    value: object
    kind: Kind


@dataclass(frozen=True)
class AttributeVariable:
    name: str


AttributeTerm = Literal | AttributeVariable


@dataclass(frozen=True)
class ValuePattern:
    """Matches any value and binds it to `name` (None: the wildcard `_`); a name bound
    twice must be the same SSA value."""

    name: str | None


@dataclass(frozen=True)
class ConstantPattern:
    """Matches an `nn.constant` all of whose elements equal `value`."""

    value: float


@dataclass(frozen=True)
class OpPattern:
    """Matches the result of an op of `info.cls` with exactly these operands and, for
    each named attribute, that value (a literal) or binding (a variable)."""

    info: OpInfo
    operands: tuple[PatternNode, ...]
    attributes: tuple[tuple[str, AttributeTerm], ...]
    bind: str | None = None


PatternNode = ValuePattern | ConstantPattern | OpPattern


@dataclass(frozen=True)
class ValueUse:
    """The value the pattern bound to `name`."""

    name: str


@dataclass(frozen=True)
class OpBuild:
    """A new op, built with its `nn` builder from these operands and attributes."""

    info: OpInfo
    operands: tuple[Replacement, ...]
    attributes: tuple[tuple[str, AttributeTerm], ...]


Replacement = ValueUse | OpBuild


@dataclass(frozen=True)
class Query:
    """`function(name)` (or `dim(name, index)`) of a bound tensor."""

    function: str
    name: str
    index: int = 0


Term = Query | AttributeVariable | Literal


@dataclass(frozen=True)
class Compare:
    lhs: Term
    operator: str
    rhs: Term


@dataclass(frozen=True)
class IsKind:
    """`name is [not] a parameter | trainable parameter | frozen parameter | constant`."""

    name: str
    kind: str
    negated: bool


Condition = Compare | IsKind


@dataclass(frozen=True)
class Rule:
    name: str
    location: str
    """`file:line:column` of the rule, for messages."""
    pattern: OpPattern
    replacement: Replacement
    conditions: tuple[Condition, ...]


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """The rules of the file at `path`, checked; a `UserError` `file:line:column:
    message` for the first problem."""
    if not str(path):
        raise UserError("rules: no rule file given; write rules{file=PATH}")
    text = read_user_file(Path(path), what="rule file")
    return parse_rules(text, str(path))


def parse_rules(text: str, filename: str = "<rules>") -> tuple[Rule, ...]:
    """The rules of `text` (the contents of `filename`, for messages), checked."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        line, column = e.line, e.column
        token = getattr(e, "token", None)
        if isinstance(token, Token) and token.type == "$END" and token.end_line:
            line, column = token.end_line, token.end_column  # just after the last token
        raise UserError(
            f"{filename}:{line}:{column}: syntax error: {_syntax_message(e)}"
        ) from None
    rules = tuple(_RuleCompiler(filename, node).compile() for node in tree.children)
    names: dict[str, str] = {}
    for rule, node in zip(rules, tree.children, strict=True):
        if node.children[0] is None:  # unnamed: `rule-LINE`, only for messages
            continue
        if rule.name in names:
            raise UserError(
                f"{rule.location}: rule name '{rule.name}' is already used at "
                f"{names[rule.name]}"
            )
        names[rule.name] = rule.location
    return rules


def _terminal_words(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    pattern = _parser().get_terminal(name).pattern
    return f"'{pattern.value}'"


def _syntax_message(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedCharacters):
        return f"unexpected character '{error.char}'"
    # `accepts` is what the parser state takes; `expected` (what the lexer state
    # takes) is wider when the lexer reports the error
    accepted = getattr(error, "accepts", None) or getattr(error, "expected", ())
    expected = sorted({_terminal_words(t) for t in accepted})
    if isinstance(error, UnexpectedEOF):
        found = "end of file"
    else:
        assert isinstance(error, UnexpectedToken)
        token = error.token
        found = "end of file" if token.type == "$END" else f"'{token.value}'"
    if not expected:
        return f"unexpected {found}"
    listed = expected[0] if len(expected) == 1 else (
        "one of " + ", ".join(expected[:-1]) + " or " + expected[-1]
    )
    return f"unexpected {found}, expected {listed}"


# --------------------------------------------------------------------------------------
# Compiling one rule
# --------------------------------------------------------------------------------------


@dataclass
class _Scope:
    """The names a pattern binds: tensors, and attributes with their kinds."""

    tensors: set[str] = field(default_factory=set)
    attributes: dict[str, Kind] = field(default_factory=dict)
    float_tensors: set[str] = field(default_factory=set)
    """Tensors the pattern passes to a float-only operand."""
    dtypes: dict[str, Attribute] = field(default_factory=dict)
    """Element types the conditions fix (`dtype(x) == i64`)."""

    def describe(self) -> str:
        names = sorted(self.tensors | set(self.attributes))
        return f"the pattern binds {', '.join(names)}" if names else "the pattern binds no names"


class _RuleCompiler:
    """Compiles one `rule` tree; every error names the position of the offending
    piece."""

    def __init__(self, filename: str, tree: Tree):
        self.filename = filename
        self.tree = tree
        self.scope = _Scope()

    def at(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            return f"{self.filename}:{node.line}:{node.column}"
        return f"{self.filename}:{node.meta.line}:{node.meta.column}"

    def fail(self, node: Tree | Token, message: str) -> UserError:
        return UserError(f"{self.at(node)}: {message}")

    def compile(self) -> Rule:
        name, pattern_tree, replacement_tree, *condition_trees = self.tree.children
        if not (isinstance(pattern_tree, Tree) and pattern_tree.data in ("call", "bind")):
            raise self.fail(pattern_tree, "a rule's pattern must be an op, e.g. relu(x)")
        pattern = self.pattern(pattern_tree)
        assert isinstance(pattern, OpPattern)
        conditions = tuple(
            self.condition(c) for c in condition_trees if c is not None
        )
        replacement = self.replacement(replacement_tree)
        self.check_result_class(pattern, replacement, replacement_tree)
        location = self.at(self.tree)
        rule_name = str(name) if name is not None else f"rule-{self.tree.meta.line}"
        return Rule(rule_name, location, pattern, replacement, conditions)

    # --- ops and attributes -----------------------------------------------------------

    def op(self, node: Token) -> OpInfo:
        info = OP_INFOS.get(str(node))
        if info is None:
            close = difflib.get_close_matches(str(node), sorted(OP_INFOS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else (
                " (rules name nn ops by their short name, e.g. relu for nn.relu)"
            )
            raise self.fail(node, f"unknown op '{node}'{hint}")
        return info

    def split_arguments(self, call: Tree) -> tuple[list[Tree | Token], list[Tree]]:
        positional: list[Tree | Token] = []
        keywords: list[Tree] = []
        for arg in call.children[1:]:
            if arg is None:
                continue
            if isinstance(arg, Tree) and arg.data == "keyword":
                keywords.append(arg)
            elif keywords:
                raise self.fail(arg, "an operand after an attribute: give the operands "
                                     "first, then name=value attributes")
            else:
                positional.append(arg)
        return positional, keywords

    def check_arity(self, call: Tree, info: OpInfo, count: int) -> None:
        low, high = info.min_operands, info.max_operands
        if count < max(low, 1) or (high is not None and count > high):
            raise self.fail(
                call, f"nn.{info.short_name} takes {info.arity_text()} "
                f"operand{'' if info.arity_text() == '1' else 's'}, got {count}"
            )

    def attribute(self, info: OpInfo, node: Token, in_pattern: bool) -> AttributeInfo:
        attribute = info.attributes.get(str(node))
        usable = {
            n: a for n, a in info.attributes.items() if a.is_property or not in_pattern
        }
        if attribute is None or str(node) not in usable:
            if attribute is not None:
                raise self.fail(node, f"'{node}' of nn.{info.short_name} is not a "
                                      "property: only a replacement can give it")
            known = ", ".join(sorted(usable)) or "none"
            raise self.fail(
                node, f"unknown attribute '{node}' of nn.{info.short_name} (its "
                f"attributes: {known})"
            )
        return attribute

    def literal(self, node: Tree | Token) -> Literal | None:
        """The literal `node` is, or None when it is a name or an op."""
        if not isinstance(node, Tree):
            return None
        if node.data == "number":
            text = str(node.children[0])
            is_int = text.lstrip("+-").isdigit()
            return Literal(int(text) if is_int else float(text),
                           Kind.INT if is_int else Kind.FLOAT)
        if node.data == "string":
            return Literal(str(node.children[0])[1:-1], Kind.STRING)
        if node.data == "list":
            values = [self.literal(c) for c in node.children if c is not None]
            if any(v is None or v.kind is not Kind.INT for v in values):
                raise self.fail(node, "a list may hold integers only")
            return Literal(tuple(v.value for v in values if v is not None), Kind.INTS)
        if node.data == "name" and str(node.children[0]) in ("true", "false"):
            return Literal(str(node.children[0]) == "true", Kind.BOOL)
        return None

    def check_literal(self, node: Tree, value: Literal, attribute: AttributeInfo,
                      info: OpInfo) -> Literal:
        expected = attribute.kind
        if value.kind is Kind.INT and expected is Kind.FLOAT:
            return Literal(float(value.value), Kind.FLOAT)  # type: ignore[arg-type]
        if value.kind is not expected:
            raise self.fail(
                node, f"attribute {attribute.name} of nn.{info.short_name} takes "
                f"{expected.value}, got {value.kind.value}"
            )
        if attribute.choices and value.value not in attribute.choices:
            listed = ", ".join(f'"{c}"' for c in attribute.choices)
            raise self.fail(node, f"attribute {attribute.name} of nn.{info.short_name} "
                                  f"is one of {listed}, got \"{value.value}\"")
        return value

    def attribute_terms(self, call: Tree, keywords: Sequence[Tree], info: OpInfo,
                        in_pattern: bool) -> tuple[tuple[str, AttributeTerm], ...]:
        terms: dict[str, AttributeTerm] = {}
        for keyword in keywords:
            key, value = keyword.children
            attribute = self.attribute(info, key, in_pattern)
            if attribute.name in terms:
                raise self.fail(key, f"attribute {key} is given twice")
            literal = self.literal(value)
            if literal is not None:
                terms[attribute.name] = self.check_literal(value, literal, attribute, info)
            elif isinstance(value, Tree) and value.data == "name":
                variable = value.children[0]
                terms[attribute.name] = self.attribute_variable(
                    variable, attribute, info, in_pattern
                )
            else:
                raise self.fail(value, f"attribute {key} takes {attribute.kind.value} "
                                       "or a name, not an op")
        if not in_pattern:
            missing = [a.name for a in info.attributes.values()
                       if a.required and a.name not in terms]
            if missing:
                raise self.fail(call, f"nn.{info.short_name} needs the attribute(s) "
                                f"{', '.join(missing)}")
        return tuple(terms.items())

    def attribute_variable(self, node: Token, attribute: AttributeInfo, info: OpInfo,
                           in_pattern: bool) -> AttributeVariable:
        name = str(node)
        if name in self.scope.tensors:
            raise self.fail(node, f"'{name}' is a tensor, not an attribute")
        known = self.scope.attributes.get(name)
        if in_pattern and known is None:
            self.scope.attributes[name] = attribute.kind
            return AttributeVariable(name)
        if known is None:
            raise self.fail(node, f"unbound name '{name}' in the replacement "
                                  f"({self.scope.describe()})")
        compatible = known is attribute.kind or (
            known is Kind.INT and attribute.kind is Kind.FLOAT
        )
        if not compatible:
            raise self.fail(
                node, f"'{name}' is {known.value} but attribute {attribute.name} of "
                f"nn.{info.short_name} takes {attribute.kind.value}"
            )
        return AttributeVariable(name)

    # --- pattern ----------------------------------------------------------------------

    def pattern(self, node: Tree | Token, float_slot: bool = False) -> PatternNode:
        assert isinstance(node, Tree)
        if node.data == "bind":
            inner, name = node.children
            if not (isinstance(inner, Tree) and inner.data == "call"):
                raise self.fail(node, "only an op can be named with 'as'")
            op = self.pattern(inner)
            assert isinstance(op, OpPattern)
            self.bind_tensor(name, float_slot)
            return OpPattern(op.info, op.operands, op.attributes, str(name))
        if node.data == "call":
            info = self.op(node.children[0])
            positional, keywords = self.split_arguments(node)
            self.check_arity(node, info, len(positional))
            slots = info.operand_slots(len(positional))
            operands = tuple(
                self.pattern(arg, slot.float_only)
                for arg, slot in zip(positional, slots, strict=True)
            )
            return OpPattern(info, operands, self.attribute_terms(node, keywords, info, True))
        if node.data == "number":
            literal = self.literal(node)
            assert literal is not None
            return ConstantPattern(float(literal.value))  # type: ignore[arg-type]
        if node.data == "name":
            name = node.children[0]
            if str(name) == "_":
                return ValuePattern(None)
            if str(name) in ("true", "false"):
                raise self.fail(name, f"{name} is not an operand")
            self.bind_tensor(name, float_slot)
            return ValuePattern(str(name))
        raise self.fail(node, f"a {node.data} is not an operand")

    def bind_tensor(self, name: Token, float_slot: bool) -> None:
        if str(name) in self.scope.attributes:
            raise self.fail(name, f"'{name}' is an attribute, not a tensor")
        self.scope.tensors.add(str(name))
        if float_slot:
            self.scope.float_tensors.add(str(name))

    # --- replacement ------------------------------------------------------------------

    def replacement(self, node: Tree | Token) -> Replacement:
        assert isinstance(node, Tree)
        if node.data == "name":
            name = node.children[0]
            if str(name) == "_":
                raise self.fail(name, "'_' matches anything and cannot be used in a "
                                      "replacement; name the value")
            if str(name) in self.scope.attributes:
                raise self.fail(name, f"'{name}' is an attribute, not a tensor")
            if str(name) not in self.scope.tensors:
                raise self.fail(name, f"unbound name '{name}' in the replacement "
                                      f"({self.scope.describe()})")
            return ValueUse(str(name))
        if node.data == "call":
            return self.build(node)
        if node.data == "number":
            raise self.fail(node, "a number cannot be an operand of a replacement (its "
                                  "tensor type is unknown); bind a constant in the "
                                  "pattern instead")
        raise self.fail(node, f"a {node.data} cannot be a replacement value")

    def build(self, node: Tree) -> OpBuild:
        info = self.op(node.children[0])
        positional, keywords = self.split_arguments(node)
        self.check_arity(node, info, len(positional))
        slots = info.operand_slots(len(positional))
        operands = []
        for arg, slot in zip(positional, slots, strict=True):
            if not slot.buildable:
                raise self.fail(arg, f"nn.{info.short_name} with operand {slot.name} "
                                     "cannot be built by a rule (its builder takes "
                                     "that operand in a group)")
            operand = self.replacement(arg)
            self.check_operand_class(arg, operand, slot.float_only, info)
            operands.append(operand)
        return OpBuild(info, tuple(operands), self.attribute_terms(node, keywords, info, False))

    # --- element types ----------------------------------------------------------------

    def element_class(self, node: PatternNode | Replacement) -> Attribute | str | None:
        """What is known of the element type of `node`: a type the conditions fix,
        "float", or None (anything)."""
        if isinstance(node, ValuePattern | ValueUse):
            name = node.name
            if name is None:
                return None
            if name in self.scope.dtypes:
                return self.scope.dtypes[name]
            return "float" if name in self.scope.float_tensors else None
        if isinstance(node, ConstantPattern):
            return None
        tied = node.info.result_tied_to
        known = self.element_class(node.operands[tied]) if tied is not None else None
        if known is None and node.info.float_result:
            return "float"
        return known

    @staticmethod
    def disjoint(a: Attribute | str | None, b: Attribute | str | None) -> bool:
        if a is None or b is None or a == b:
            return False
        if a == "float" or b == "float":
            other = b if a == "float" else a
            return not isinstance(other, _FLOAT_TYPES)
        return True

    def check_operand_class(self, node: Tree | Token, operand: Replacement,
                            float_only: bool, info: OpInfo) -> None:
        if float_only and self.disjoint(self.element_class(operand), "float"):
            raise self.fail(
                node, f"nn.{info.short_name} takes a float tensor here, but the "
                f"conditions make its element type {self.element_class(operand)}"
            )

    def check_result_class(self, pattern: OpPattern, replacement: Replacement,
                           node: Tree | Token) -> None:
        produced = self.element_class(replacement)
        matched = self.element_class(pattern)
        if self.disjoint(produced, matched):
            raise self.fail(
                node, f"the replacement cannot have the type of the matched "
                f"nn.{pattern.info.short_name}: its element type is {produced}, the "
                f"match's is {matched}"
            )

    # --- conditions -------------------------------------------------------------------

    def condition(self, node: Tree) -> Condition:
        if node.data == "is_kind":
            name, negated, _, kind = node.children
            self.tensor_name(name)
            return IsKind(str(name), kind.data.replace("_", " "), negated is not None)
        lhs_tree, operator, rhs_tree = node.children
        lhs, lhs_kind = self.term(lhs_tree)
        rhs, rhs_kind = self.term(rhs_tree)
        self.check_comparable(node, lhs_kind, str(operator), rhs_kind)
        for query, other in ((lhs, rhs), (rhs, lhs)):
            if (str(operator) == "==" and isinstance(query, Query)
                    and query.function == "dtype" and isinstance(other, Literal)):
                assert isinstance(other.value, Attribute)
                self.scope.dtypes[query.name] = other.value
        return Compare(lhs, str(operator), rhs)

    def tensor_name(self, name: Token) -> str:
        if str(name) in self.scope.attributes:
            raise self.fail(name, f"'{name}' is an attribute, not a tensor")
        if str(name) not in self.scope.tensors:
            raise self.fail(name, f"unbound name '{name}' in a condition "
                                  f"({self.scope.describe()})")
        return str(name)

    def term(self, node: Tree | Token) -> tuple[Term, Kind]:
        literal = self.literal(node)
        if literal is not None:
            return literal, literal.kind
        assert isinstance(node, Tree)
        if node.data == "name":
            name = node.children[0]
            if str(name) in self.scope.attributes:
                return AttributeVariable(str(name)), self.scope.attributes[str(name)]
            if str(name) in self.scope.tensors:
                raise self.fail(name, f"'{name}' is a tensor: compare rank({name}), "
                                      f"shape({name}), dtype({name}) or another function")
            if str(name) in ELEMENT_TYPES:
                return Literal(ELEMENT_TYPES[str(name)], Kind.ELEMENT_TYPE), Kind.ELEMENT_TYPE
            raise self.fail(name, f"unbound name '{name}' in a condition "
                                  f"({self.scope.describe()})")
        if node.data == "call":
            return self.query(node)
        raise self.fail(node, f"a {node.data} cannot be compared")

    def query(self, node: Tree) -> tuple[Query, Kind]:
        function, *args = node.children
        if str(function) not in FUNCTIONS:
            raise self.fail(function, f"unknown function '{function}' in a condition "
                                      f"(known: {', '.join(FUNCTIONS)})")
        arity = 2 if str(function) == "dim" else 1
        args = [a for a in args if a is not None]
        if len(args) != arity or not (isinstance(args[0], Tree) and args[0].data == "name"):
            shape = f"{function}(x, i)" if arity == 2 else f"{function}(x)"
            raise self.fail(node, f"write {shape} with a bound tensor x")
        name = self.tensor_name(args[0].children[0])
        index = 0
        if arity == 2:
            literal = self.literal(args[1])
            if literal is None or literal.kind is not Kind.INT:
                raise self.fail(args[1], "the axis of dim(x, i) is an integer")
            index = int(literal.value)  # type: ignore[arg-type]
        return Query(str(function), name, index), FUNCTIONS[str(function)]

    def check_comparable(self, node: Tree, lhs: Kind, operator: str, rhs: Kind) -> None:
        numbers = {Kind.INT, Kind.FLOAT}
        if operator not in ("==", "!="):
            if lhs in numbers and rhs in numbers:
                return
            raise self.fail(node, f"'{operator}' compares numbers, not "
                                  f"{lhs.value} and {rhs.value}")
        if lhs is rhs or {lhs, rhs} <= numbers or {lhs, rhs} == {Kind.INTS, Kind.INT}:
            return
        raise self.fail(node, f"cannot compare {lhs.value} with {rhs.value}")


__all__ = [
    "ELEMENT_TYPES", "FUNCTIONS", "GRAMMAR", "AttributeTerm", "AttributeVariable",
    "Compare", "Condition", "ConstantPattern", "IsKind", "Literal", "OpBuild",
    "OpPattern", "PatternNode", "Query", "Replacement", "Rule", "Term", "ValuePattern",
    "ValueUse", "load_rules", "parse_rules",
]
