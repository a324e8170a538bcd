"""`SubsetCosts` (what `sparse-update` budgets with, built by `subset_costs`) reads the
cost of training any subset of the parameters off one training step in which all train. Its oracle is the
slow way it replaces: build the training step of exactly that subset with `autodiff`
and count it with `edge-opt report` (`build_report`). On random models, for random
subsets, optimizers and channel restrictions, both give the same bytes and FLOPs."""

from __future__ import annotations

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.channels import output_channels, set_restriction
from edge_opt.ir.model_io import parse_module
from edge_opt.ir.report import build_report
from edge_opt.ir.session import get_function
from edge_opt.ir.subset_costs import SubsetCosts
from edge_opt.ir.trainable import model_params, set_trainable
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.sparse_update import subset_costs
from edge_opt.testing import random_models

PROPERTY = settings(max_examples=40)

LAYERED = ["linear", "conv2d", "conv_transpose2d", "matmul", "layer_norm", "group_norm",
           "relu", "gelu", "add", "mul", "max_pool2d", "avg_pool2d", "reshape",
           "transpose", "concat", "slice", "attention", "reduce_mean"]
"""Ops of models with layers to choose from (parametrised ones and what joins them)."""

OPTIMIZERS = [{"optimizer": "sgd"}, {"optimizer": "sgd", "momentum": 0.9},
              {"optimizer": "adam"}]


def _step(module: ModuleOp, trained: set[str], restrictions: dict[str, tuple[int, ...]],
          optimizer: dict) -> ModuleOp:
    probe = module.clone()
    for param in model_params(probe):
        name = param.sym_name.data
        set_trainable(param, name in trained)
        set_restriction(param, restrictions.get(name))
    AutodiffPass(loss="mse", **optimizer).apply(Context(), probe)
    return probe


def _check(model, optimizer, data, always_restrict: bool) -> None:
    module = model.module
    names = sorted(p.sym_name.data for p in model_params(module))
    try:
        costs = subset_costs(module, set(names), "forward",
                             lambda m: AutodiffPass(loss="mse", **optimizer).apply(Context(), m))
    except PassFailedException as e:  # no parameter reaches the loss: nothing to cost
        assume("nothing would train" not in str(e) and "no parameter" not in str(e))
        raise
    candidates = sorted(costs.trained())
    assume(candidates)
    trained = set(data.draw(st.lists(st.sampled_from(candidates), min_size=1, unique=True)))
    forward = get_function(module, "forward")
    params = {p.sym_name.data: p for p in module.ops if isinstance(p, nn.ParamOp)}
    restrictions = {}
    for name in sorted(trained):
        out = output_channels(forward, params[name])
        if out is not None and out > 1 and (always_restrict or data.draw(st.booleans())):
            restrictions[name] = tuple(sorted(data.draw(st.lists(
                st.integers(0, out - 1), min_size=1, max_size=out - 1, unique=True))))
    event(f"{len(restrictions)} restricted parameter(s)")
    report = build_report(_step(module, trained, restrictions, optimizer))
    assert costs.costs(trained, restrictions) == (
        report.backward_memory_bytes, report.flops_backward)


@PROPERTY
@given(model=random_models(ops=LAYERED, trainable="all", min_ops=2, max_ops=8),
       optimizer=st.sampled_from(OPTIMIZERS), data=st.data())
def test_subset_costs_equal_the_report_of_the_subsets_own_step(model, optimizer, data):
    _check(model, optimizer, data, always_restrict=False)


@PROPERTY
@given(model=random_models(ops=["linear", "conv2d", "relu", "add", "max_pool2d"],
                           trainable="all", min_ops=2, max_ops=6, max_dim=6),
       optimizer=st.sampled_from(OPTIMIZERS), data=st.data())
def test_channel_restricted_subset_costs_equal_the_report(model, optimizer, data):
    _check(model, optimizer, data, always_restrict=True)


ONE_LINEAR = """builtin.module {
  nn.param trainable @w : tensor<3x2xf32> = dense<0.5> : tensor<3x2xf32>
  func.func @forward(%x: tensor<2x2xf32>) -> tensor<2x3xf32> {
    %w = nn.load @w : tensor<3x2xf32>
    %y = nn.linear %x, %w : (tensor<2x2xf32>, tensor<3x2xf32>) -> tensor<2x3xf32>
    func.return %y : tensor<2x3xf32>
  }
}
"""


def test_a_module_without_a_step_or_a_subset_it_does_not_train_is_an_error():
    with pytest.raises(ValueError, match="no @train_step"):
        SubsetCosts(ModuleOp([]))
    module = parse_module(ONE_LINEAR)
    costs = subset_costs(module, {p.sym_name.data for p in model_params(module)},
                         "forward", lambda m: AutodiffPass(loss="mse").apply(Context(), m))
    with pytest.raises(ValueError, match="does not train @nope|does not train nope"):
        costs.costs({"nope"})
