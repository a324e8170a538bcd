"""`edge-opt fuzz --gradients`: the training step's gradients against finite
differences (`edge_opt.testing.gradients`), an oracle for `autodiff` itself, and its
running statistics (`bn=batch-update`) against the batch's; and `--trainable` (frozen
models).
"""

from __future__ import annotations

import shlex

import pytest
from xdsl.dialects import func

from edge_opt.autodiff.batch_norm_modes import BatchNormModes
from edge_opt.autodiff.batch_statistics import ExactBatchStatistics
from edge_opt.autodiff.rules import RULES, elementwise
from edge_opt.dialects import nn, train
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import get_function
from edge_opt.passes import fold_batch_norm
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.support.errors import UserError
from edge_opt.testing.gradients import sgd_step
from edge_opt.tools.driver import main


def fuzz(argv: list[str], capsys) -> tuple[int, str]:
    status = main(["fuzz", *argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_a_correct_training_step_passes(capsys):
    status, output = fuzz(["--gradients", "--ops", "linear,tanh,mul,sub", "--examples",
                           "15"], capsys)
    assert status == 0, output
    assert output.startswith("edge-opt fuzz --gradients train-full{loss=mse} (@train_step "
                             "against finite differences, f64): 15 examples in ")


def _sub_without_minus(b, op, dy, needs):
    """The gradient of `sub` with the right operand's sign wrong (a planted bug)."""
    return [b.reduce_to(dy, elementwise.shape_of(op.lhs)) if needs[0] else None,
            b.reduce_to(dy, elementwise.shape_of(op.rhs)) if needs[1] else None]


def test_a_wrong_gradient_rule_is_caught_and_replays(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(RULES, nn.SubOp, _sub_without_minus)
    out = tmp_path / "repro"
    status, output = fuzz(["--gradients", "--ops", "sub,linear,tanh", "--out", str(out)],
                          capsys)
    assert status == 1, output
    assert "the training step's gradients differ from finite differences" in output
    body = get_function(load_model(out / "repro.mlir"), "forward").body.block
    ops = [op.name for op in body.ops if not isinstance(op, func.ReturnOp)]
    assert "nn.sub" in ops and len(ops) <= 5, ops
    (line,) = [x for x in output.splitlines() if x.startswith("replay: ")]
    assert "--gradients" in line
    status, replayed = fuzz(["--gradients", "--replay", str(out / "repro.mlir")], capsys)
    assert status == 1 and "FAILED on" in replayed
    monkeypatch.undo()
    status, replayed = fuzz(["--gradients", "--replay", str(out / "repro.mlir")], capsys)
    assert status == 0 and "the gradients agree" in replayed


def _momentum_on_running(self, name, running, batch):
    """`running = momentum running + (1 - momentum) batch` (a planted bug: the
    momentum weighs the wrong term)."""
    b, momentum = self.grads, self.options.bn_momentum
    new = b.emit(nn.AddOp(b.scale(running, momentum), b.scale(batch, 1.0 - momentum)))
    b.block.add_op(train.StoreOp(new, name))


@pytest.mark.parametrize("bug", [False, True])
def test_running_statistics_are_checked_against_the_batch(bug, monkeypatch, tmp_path,
                                                          capsys):
    if bug:
        monkeypatch.setattr(BatchNormModes, "_store", _momentum_on_running)
    pipeline = "train-full{loss=mse bn=batch-update bn-momentum=0.3}"
    status, output = fuzz(["--gradients", pipeline, "--ops", "batch_norm,conv2d,linear",
                           "--examples", "25", "--out", str(tmp_path)], capsys)
    assert status == int(bug), output
    if bug:
        assert "the training step's running statistics differ from the batch's" in output
        assert "expected (1 - 0.3) * array(" in output


def _half_spread_moments(self, x, layer):
    """A micro-batch's centred sum of squares halved (a planted bug: the merged
    variance is too small)."""
    mean, m2 = _right_moments(self, x, layer)
    return mean, self.grads.scale(m2, 0.5)


_right_moments = ExactBatchStatistics._moments


@pytest.mark.parametrize("bug", [False, True])
def test_exact_accumulation_keeps_the_whole_batch_statistics(bug, monkeypatch, tmp_path,
                                                             capsys):
    """With bn-accumulate=exact the running statistics after k micro-batches must be
    the whole batch's: the same oracle as at accumulate=1 (batches of 2 and 4)."""
    if bug:
        monkeypatch.setattr(ExactBatchStatistics, "_moments", _half_spread_moments)
    pipeline = ("train-full{loss=mse bn=batch-update accumulate=2 "
                "bn-accumulate=exact}")
    status, output = fuzz(["--gradients", pipeline, "--ops", "batch_norm,conv2d",
                           "--batch", "2,4", "--examples", "30", "--out",
                           str(tmp_path)], capsys)
    assert status == int(bug), output
    assert "refused: 30 models" not in output  # some models were checked
    if bug:
        assert "the training step's" in output and "differ from" in output
        (line,) = [x for x in output.splitlines() if x.startswith("replay: ")]
        assert "--batch" not in line  # a drawing option, not one of the check
        status, _ = fuzz(shlex.split(line.removeprefix("replay: "))[2:], capsys)
        assert status == 1


def test_the_step_is_plain_sgd_with_lr_one():
    (step,) = [p for p in sgd_step("train-full{loss=mse optimizer=adam lr=0.3 "
                                   "weight-decay=0.1}") if isinstance(p, AutodiffPass)]
    assert (step.optimizer, step.lr, step.momentum, step.weight_decay) == ("sgd", 1.0, 0.0,
                                                                           0.0)
    assert step.loss == "mse"
    with pytest.raises(UserError, match="builds no training step"):
        sgd_step("cse")


def test_frozen_models_reach_passes_on_frozen_layers(monkeypatch, tmp_path, capsys):
    """fold-batch-norm acts only where all six parameters are frozen: with
    `--trainable none` a fold that forgets the running mean is caught."""
    right = fold_batch_norm.folded

    def without_mean(w, b, scale, bias, mean, var, eps):
        return right(w, b, scale, bias, 0 * mean, var, eps)

    monkeypatch.setattr(fold_batch_norm, "folded", without_mean)
    status, output = fuzz(["fold-batch-norm", "--ops", "conv2d,linear,batch_norm",
                           "--trainable", "none", "--out", str(tmp_path)], capsys)
    assert status == 1, output
    assert "fold-batch-norm changed the meaning of @forward" in output
    (line,) = [x for x in output.splitlines() if x.startswith("replay: ")]
    assert "--trainable" not in line  # a drawing option, not one of the check
