"""The `rules` pass: declarative rewrite rules (docs/rewrite-rules.md).

Property tests fuzz a file of identities with random models; hand-built models pin
that each rule fires (and only when it should); deliberately wrong rules must be caught
by the equivalence harness; load-time errors name file:line:column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from xdsl.dialects.builtin import ModuleOp

from edge_opt.dialects import nn
from edge_opt.ir.model_io import print_module
from edge_opt.ir.session import get_function
from edge_opt.passes.registry import parse_pipeline
from edge_opt.passes.rule_language import GRAMMAR, parse_rules
from edge_opt.passes.rules import ApplyRulesPass
from edge_opt.support.errors import UserError
from edge_opt.testing import (
    ForwardBuilder,
    apply_passes,
    assert_pass_preserves_semantics,
    random_models,
)

IDENTITIES = """\
# Identities that hold for every value (up to float rounding).
double-neg: neg(neg(x)) => x
relu-idempotent: relu(relu(x)) => relu(x)
neg-of-sub: neg(sub(x, y)) => sub(y, x)
sub-of-neg: sub(x, neg(y)) => add(x, y)
add-of-neg: add(x, neg(y)) => sub(x, y)
mul-by-one: mul(x, 1.0) => x
x-minus-x-plus: add(sub(x, y), y) => x
    where shape(x) == shape(y)   # x - y + y rounds; within tolerance for tame values
fold-bias: add(linear(x, w), b) => linear(x, w, b) where rank(b) == 1
"""


def _rules_file(tmp_path: Path, text: str, name: str = "test.rules") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _ops(module: ModuleOp) -> list[str]:
    return [op.name for op in module.walk() if op.name.startswith("nn.")
            and op.name not in ("nn.param", "nn.load", "nn.constant")]


# --------------------------------------------------------------------------------------
# Fuzzing: the identities keep the meaning of random models, and do fire
# --------------------------------------------------------------------------------------


def test_identity_rules_preserve_semantics(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, IDENTITIES))
    fired: list[bool] = []

    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @given(random_models(ops=["neg", "relu", "sub", "add", "linear"], min_ops=2,
                         max_ops=6))
    def check(model):
        result = assert_pass_preserves_semantics(
            rules, model.module, model.inputs, rtol=1e-3, atol=1e-4
        )
        # dce alone removes what the random model left dead: a rule fired iff the
        # result differs from that.
        dce_only = apply_passes("dce", model.module)
        fired.append(print_module(result) != print_module(dce_only))

    check()
    assert sum(fired) >= 10, f"the rules fired in only {sum(fired)} of {len(fired)} models"


# --------------------------------------------------------------------------------------
# Hand-built models: each rule fires where it should, and only there
# --------------------------------------------------------------------------------------


def test_identities_fire_on_a_hand_built_model(tmp_path: Path):
    b = ForwardBuilder((2, 4), seed=1)
    w = b.param("w", (3, 4))
    bias = b.param("b", (3,))
    y = b.op(nn.NegOp(b.op(nn.NegOp(b.x))))
    y = b.op(nn.ReluOp(b.op(nn.ReluOp(y))))
    y = b.op(nn.AddOp(b.op(nn.LinearOp(y, w)), bias))
    module = b.module(y)
    result = assert_pass_preserves_semantics(
        ApplyRulesPass(file=_rules_file(tmp_path, IDENTITIES)), module, b.inputs
    )
    assert _ops(result) == ["nn.relu", "nn.linear"]
    (linear,) = [op for op in result.walk() if isinstance(op, nn.LinearOp)]
    assert linear.bias is not None and linear.bias.owner.param.string_value() == "b"


def test_fusion_when_the_bias_is_a_parameter_only(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, """
        fuse: add(linear(x, w), b) => linear(x, w, b) where rank(b) == 1 and b is a parameter
    """))
    b = ForwardBuilder((2, 4), seed=2)
    w = b.param("w", (3, 4))
    from_param = b.op(nn.AddOp(b.op(nn.LinearOp(b.x, w)), b.param("b", (3,))))
    from_constant = b.op(nn.AddOp(b.op(nn.LinearOp(b.x, w)), b.constant([1.0, 2.0, 3.0])))
    with_bias = b.op(nn.AddOp(b.op(nn.LinearOp(b.x, w, b.param("c", (3,)))),
                              b.param("d", (3,))))
    result = assert_pass_preserves_semantics(
        rules, b.module(from_param, from_constant, with_bias), b.inputs
    )
    # Only the first add goes: the second's bias is a constant, the third's linear
    # already has a bias (the pattern names two operands: it matches no third).
    assert _ops(result) == ["nn.linear", "nn.linear", "nn.add", "nn.linear", "nn.add"]


def test_a_rule_does_not_fire_when_the_replacement_type_differs(tmp_path: Path):
    # sub(x, b) with b of shape (4,) broadcasts to x's type, but `=> b` would have b's
    # type: the rule must skip (it is also wrong, which does not matter here).
    rules = ApplyRulesPass(file=_rules_file(tmp_path, "sub(x, b) => b"))
    b = ForwardBuilder((2, 4), seed=3)
    module = b.module(b.op(nn.SubOp(b.x, b.param("b", (4,)))))
    result = apply_passes(rules, module)
    assert _ops(result) == ["nn.sub"]


def test_attribute_constraints_and_repeated_names(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, """
        same-axis: softmax(softmax(x, axis=a), axis=a) => softmax(x, axis=a) where a == -1
    """))
    b = ForwardBuilder((2, 3), seed=4)
    last = b.op(nn.SoftmaxOp(b.op(nn.SoftmaxOp(b.x, axis=-1)), axis=-1))
    mixed = b.op(nn.SoftmaxOp(b.op(nn.SoftmaxOp(b.x, axis=0)), axis=-1))
    first = b.op(nn.SoftmaxOp(b.op(nn.SoftmaxOp(b.x, axis=0)), axis=0))
    result = apply_passes(rules, b.module(last, mixed, first))
    # Only the first pair: the second's axes differ, the third's are 0, not -1.
    assert _ops(result) == ["nn.softmax", "nn.softmax", "nn.softmax", "nn.softmax",
                            "nn.softmax"]
    # The same name twice is the same SSA value: mul(x, x) but not mul(x, y).
    rules = ApplyRulesPass(file=_rules_file(tmp_path, "mul(x, x) => relu(x)", "sq.rules"))
    b = ForwardBuilder((2, 3), seed=5)
    same = b.op(nn.MulOp(b.x, b.x))
    other = b.op(nn.MulOp(b.x, b.op(nn.NegOp(b.x))))
    assert _ops(apply_passes(rules, b.module(same, other))) == ["nn.relu", "nn.neg", "nn.mul"]


def test_a_commuting_rule_fires_once_per_op(tmp_path: Path):
    """Ops a rule built are not roots again: the pass terminates."""
    rules = ApplyRulesPass(file=_rules_file(tmp_path, "add(x, y) => add(y, x)"))
    b = ForwardBuilder((2, 3), (2, 3), seed=6)
    module = b.module(b.op(nn.AddOp(b.x, b.block.args[1])))
    (add,) = [op for op in apply_passes(rules, module).walk() if isinstance(op, nn.AddOp)]
    assert [o.name_hint for o in add.operands] == ["x1", "x0"]


def test_the_pass_is_registered_and_reads_a_bare_file_name(tmp_path: Path):
    path = _rules_file(tmp_path, IDENTITIES, "my.rules")
    (parsed,) = parse_pipeline(f"rules{{file={path}}}")
    assert parsed == ApplyRulesPass(file=path)


# --------------------------------------------------------------------------------------
# Wrong rules are caught by the harness
# --------------------------------------------------------------------------------------


def test_swapping_the_operands_of_sub_is_caught(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, "swap: sub(x, y) => sub(y, x)"))

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              print_blob=False)
    @given(random_models(ops=["sub"], max_ops=3))
    def check(model):
        assert_pass_preserves_semantics(rules, model.module, model.inputs)

    with pytest.raises(AssertionError, match="rules.* changed the meaning of @forward"):
        check()


def test_a_fusion_that_drops_the_bias_is_caught(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(
        tmp_path, "drop-bias: add(linear(x, w), b) => linear(x, w) where rank(b) == 1"
    ))
    b = ForwardBuilder((2, 4), seed=7)
    module = b.module(b.op(nn.AddOp(b.op(nn.LinearOp(b.x, b.param("w", (3, 4)))),
                                    b.param("b", (3,)))))
    with pytest.raises(AssertionError, match="output 0 differs"):
        assert_pass_preserves_semantics(rules, module, b.inputs)


# --------------------------------------------------------------------------------------
# Load-time errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("neg(neg(x)) =>\n", ("f.rules:1:15: syntax error: unexpected end of file, expected "
                         "one of '[', a name, a number or a string")),
    ("relux(x) => x", "f.rules:1:1: unknown op 'relux' (did you mean 'relu'?)"),
    ("neg(x, y) => x", "f.rules:1:1: nn.neg takes 1 operand, got 2"),
    ("a: linear(x) => x", "f.rules:1:4: nn.linear takes 2 to 3 operands, got 1"),
    ("softmax(x, axs=1) => x", ("f.rules:1:12: unknown attribute 'axs' of nn.softmax "
                               "(its attributes: axis)")),
    ("neg(neg(x)) =>\n  y", ("f.rules:2:3: unbound name 'y' in the replacement (the "
                            "pattern binds x)")),
    ("neg(x) => x when rank(z) == 1", "f.rules:1:23: unbound name 'z' in a condition"),
    ("softmax(x) => softmax(x, axis=1.5)", ("f.rules:1:31: attribute axis of nn.softmax "
                                           "takes an integer, got a number")),
    ("group_norm(x, s, b, groups=2) => group_norm(x, s, b)",
     "f.rules:1:34: nn.group_norm needs the attribute(s) groups"),
    ("reshape(x) => relu(x) where dtype(x) == i64",
     ("f.rules:1:20: nn.relu takes a float tensor here, but the conditions make its "
     "element type i64")),
    ("softmax(x, axis=a) => relu(a)", "f.rules:1:28: 'a' is an attribute, not a tensor"),
    ("relu(reshape(x)) => x where dtype(x) == i64",
     ("f.rules:1:21: the replacement cannot have the type of the matched nn.relu: its "
     "element type is i64, the match's is float")),
    ("neg(x) => x where rank(x) = 1", ("f.rules:1:27: syntax error: unexpected '=', "
                                       "expected one of 'as' or a comparison")),
    ("neg(x) => x where rank(x) == f32", ("f.rules:1:19: cannot compare an integer with "
                                          "an element type")),
    ("neg(x) => x where relu(x) == 1", ("f.rules:1:19: unknown function 'relu' in a "
                                        "condition")),
    ("neg(x) => 1.0", "f.rules:1:11: a number cannot be an operand of a replacement"),
    ("x => x", "f.rules:1:1: a rule's pattern must be an op"),
    ("a: neg(x) => x\na: relu(x) => x", ("f.rules:2:1: rule name 'a' is already used at "
                                         "f.rules:1:1")),
])
def test_load_time_errors(text: str, message: str):
    with pytest.raises(UserError) as error:
        parse_rules(text, "f.rules")
    assert str(error.value).startswith(message), str(error.value)


def test_a_rules_pass_without_a_file_is_an_error():
    b = ForwardBuilder((2,), seed=0)
    with pytest.raises(UserError, match=r"no rule file given; write rules\{file=PATH\}"):
        apply_passes(ApplyRulesPass(), b.module(b.x))


def test_a_missing_rule_file_is_an_error(tmp_path: Path):
    b = ForwardBuilder((2,), seed=0)
    module = b.module(b.x)
    with pytest.raises(UserError, match="no-such.rules: no such rule file"):
        apply_passes(ApplyRulesPass(file=str(tmp_path / "no-such.rules")), module)


def test_float_attributes_compare_at_f32_precision(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(
        tmp_path, "leaky_relu(leaky_relu(x, alpha=0.1), alpha=0.1) => leaky_relu(x, alpha=0.01)"
    ))
    b = ForwardBuilder((5,), seed=8, dtype=np.float32)
    b.inputs["x0"] = np.array([-2.0, -1.0, 0.0, 1.0, 2.0], np.float32)
    y = b.op(nn.LeakyReluOp(b.op(nn.LeakyReluOp(b.x, 0.1)), 0.1))
    result = assert_pass_preserves_semantics(rules, b.module(y), b.inputs)
    assert _ops(result) == ["nn.leaky_relu"]


def test_the_documented_grammar_is_the_grammar():
    docs = (Path(__file__).parents[1] / "docs" / "rewrite-rules.md").read_text()
    assert GRAMMAR.strip() in docs


@pytest.mark.parametrize(("condition", "fires"), [
    ("dim(x, -1) == 4", True),
    ("dim(x, 0) == 4", False),
    ("shape(x) == [2, 4]", True),
    ("dtype(x) == f64", True),
    ("dtype(x) == f32", False),
    ("type(x) == type(y)", True),
    ("uses(y) == 1", True),
    ("uses(x) > 1", False),
    ("x is not a parameter", True),
    ("w is a trainable parameter", True),
    ("w is a frozen parameter", False),
    ("value(c) == 0.5", True),
    ("value(w) == 0.5", False),
    ("c is a constant, rank(c) <= 2", True),
])
def test_conditions(tmp_path: Path, condition: str, fires: bool):
    rules = ApplyRulesPass(file=_rules_file(
        tmp_path, f"mul(neg(x) as y, sub(w, c)) => mul(sub(w, c), y) where {condition}"
    ))
    b = ForwardBuilder((2, 4), seed=9)
    w = b.param("w", (2, 4), trainable=True)
    y = b.op(nn.MulOp(b.op(nn.NegOp(b.x)), b.op(nn.SubOp(w, b.constant(0.5)))))
    result = assert_pass_preserves_semantics(rules, b.module(y), b.inputs)
    (mul,) = [op for op in result.walk() if isinstance(op, nn.MulOp)]
    assert isinstance(mul.lhs.owner, nn.SubOp) == fires


FOLD_BIAS = "add(linear(x, w), b) => linear(x, w, b) where rank(b) == 1 and b is a parameter"


@pytest.mark.parametrize("bias_first", [False, True])
def test_commutative_ops_match_their_operands_in_either_order(tmp_path: Path,
                                                              bias_first: bool):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, FOLD_BIAS))
    b = ForwardBuilder((2, 3), seed=10)
    linear = b.op(nn.LinearOp(b.x, b.param("w", (4, 3))))
    bias = b.param("b", (4,))
    y = b.op(nn.AddOp(bias, linear) if bias_first else nn.AddOp(linear, bias))
    result = assert_pass_preserves_semantics(rules, b.module(y), b.inputs)
    assert _ops(result) == ["nn.linear"]


def test_the_swapped_order_is_tried_when_a_condition_fails(tmp_path: Path):
    """add(p, q) with both operands parameters-or-not: the condition picks the order."""
    rules = ApplyRulesPass(file=_rules_file(
        tmp_path, "add(x, c) => sub(x, neg(c)) where c is a constant"))
    b = ForwardBuilder((2, 3), seed=11)
    y = b.op(nn.AddOp(b.constant(2.0), b.x))
    result = assert_pass_preserves_semantics(rules, b.module(y), b.inputs)
    (sub,) = [op for op in result.walk() if isinstance(op, nn.SubOp)]
    assert sub.lhs is get_function(result, "forward").body.block.args[0]


def test_sub_does_not_commute(tmp_path: Path):
    rules = ApplyRulesPass(file=_rules_file(tmp_path, "sub(linear(x, w), b) => linear(x, w)"))
    b = ForwardBuilder((2, 3), seed=12)
    linear = b.op(nn.LinearOp(b.x, b.param("w", (4, 3))))
    y = b.op(nn.SubOp(b.param("b", (4,)), linear))
    assert _ops(apply_passes(rules, b.module(y))) == ["nn.linear", "nn.sub"]
