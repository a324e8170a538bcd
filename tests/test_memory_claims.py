"""`assert_memory_claims_hold`: a pass that records a lower peak must keep every
in-place parameter update in place (`edge_opt.testing.memory_claims`), and `edge-opt
fuzz` checks it after the equivalence check; and a pass's own promises
(`check_result`, `assert_promises_hold`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from edge_opt.dialects import nn, train
from edge_opt.ir.memory_passes import record
from edge_opt.ir.model_io import parse_module
from edge_opt.ir.session import get_function
from edge_opt.passes.recompute import RecomputePass
from edge_opt.passes.reorder_for_memory import ReorderForMemoryPass
from edge_opt.testing.campaign import TRAIN_PIPELINE, equivalence_property
from edge_opt.testing.equivalence import apply_passes
from edge_opt.testing.memory_claims import assert_memory_claims_hold, copied_parameters
from edge_opt.testing.strategies import RandomModel

MODEL = """
builtin.module {
  nn.param trainable @w : tensor<1x3xf32> = dense<[[1.9, 1.2, 1.8]]> : tensor<1x3xf32>
  func.func @forward(%x: tensor<2x2xf32>) -> tensor<1x3xf32> {
    %0 = nn.load @w : tensor<1x3xf32>
    func.return %0 : tensor<1x3xf32>
  }
}
"""
"""The loss reads `@w`'s old value, as its update does."""


@dataclass(frozen=True)
class SinkLossPass(ModulePass):
    """Moves the loss of `@train_step` to its end, after the update of `@w` (as a
    reorder that ignores the order of parameter reads and writes may), and records
    a peak as the memory passes do."""

    name = "sink-loss"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        block = get_function(op, "train_step").body.block
        (loss,) = [o for o in block.ops if isinstance(o, train.MseOp)]
        loss.detach()
        assert isinstance(block.last_op, func.ReturnOp)
        block.insert_op_before(loss, block.last_op)
        record(op, **{"pass": self.name}, function="train_step", peak_before=24,
               peak_after=12, extra_flops=0, search="none")


def step() -> ModuleOp:
    return apply_passes(TRAIN_PIPELINE, parse_module(MODEL))


def test_the_update_is_in_place_before_and_copied_after_sinking_the_loss():
    before = step()
    assert copied_parameters(before) == {}
    assert copied_parameters(apply_passes(SinkLossPass(), before)) == {"w": 1}


def test_a_pass_that_moves_a_read_after_an_update_is_caught():
    before = step()
    after = apply_passes(SinkLossPass(), before)
    with pytest.raises(AssertionError, match=r"sink-loss: after the pass, bufferize can "
                       r"no longer update @w in place"):
        assert_memory_claims_hold(before, after)


def test_reorder_for_memory_keeps_its_claims():
    before = step()
    assert_memory_claims_hold(before, apply_passes(ReorderForMemoryPass(), before))


def test_a_pass_without_a_record_is_not_checked():
    """The numbers stay right: only a pass that claims a peak promises more."""
    before = step()
    after = apply_passes(SinkLossPass(), before)
    del after.attributes["edge_opt.memory_passes"]
    assert_memory_claims_hold(before, after)


def test_fuzz_property_checks_the_claims():
    model = RandomModel(parse_module(MODEL), {"x": np.zeros((2, 2), np.float32)})
    equivalence_property(ReorderForMemoryPass(), TRAIN_PIPELINE)(model)
    with pytest.raises(AssertionError, match="can no longer update @w in place"):
        equivalence_property(SinkLossPass(), TRAIN_PIPELINE)(model)


LINEAR_TANH = """
builtin.module {
  nn.param trainable @w : tensor<3x2xf32> = dense<[[0.5, -0.2], [0.1, 0.3], [-0.4, 0.2]]> : tensor<3x2xf32>
  func.func @forward(%x: tensor<4x2xf32>) -> tensor<4x3xf32> {
    %0 = nn.load @w : tensor<3x2xf32>
    %1 = nn.linear %x, %0 : (tensor<4x2xf32>, tensor<3x2xf32>) -> tensor<4x3xf32>
    %2 = nn.tanh %1 : tensor<4x3xf32>
    func.return %2 : tensor<4x3xf32>
  }
}
"""


@pytest.mark.parametrize(("copied", "broken"), [(nn.TanhOp, False), (nn.LinearOp, True)])
def test_recompute_promises_cheap_copies(copied, broken):
    """`recompute` without `expensive` may add copies of cheap ops only (its
    `check_result`, which `edge-opt fuzz` runs): a copy of the linear breaks it."""
    before = apply_passes(TRAIN_PIPELINE, parse_module(LINEAR_TANH))
    after = before.clone()
    block = get_function(after, "train_step").body.block
    (original,) = [o for o in block.ops if isinstance(o, copied)][:1]
    block.insert_op_after(original.clone(), original)
    problems = RecomputePass().check_result(before, after)
    assert bool(problems) == broken, problems
    if broken:
        (problem,) = problems
        assert problem == "recompute (expensive=false) added ops that are not cheap: nn.linear"
    assert RecomputePass(expensive=True).check_result(before, after) == []


@dataclass(frozen=True)
class PromiseBreakingPass(ModulePass):
    """Changes nothing, and says it broke its promise."""

    name = "promise-breaking"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pass

    def check_result(self, before: ModuleOp, after: ModuleOp) -> list[str]:
        return ["promise-breaking: broken"]


def test_fuzz_property_checks_a_pass_s_own_promises():
    model = RandomModel(parse_module(MODEL), {"x": np.zeros((2, 2), np.float32)})
    with pytest.raises(AssertionError, match="promise-breaking: broken"):
        equivalence_property(PromiseBreakingPass())(model)
    with pytest.raises(AssertionError, match="promise-breaking: broken"):
        equivalence_property([ReorderForMemoryPass(), PromiseBreakingPass()],
                             TRAIN_PIPELINE)(model)
