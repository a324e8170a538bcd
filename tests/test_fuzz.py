"""`edge-opt fuzz` and its engine (`edge_opt.testing.campaign`, `.reduce`).

The acceptance cases of issue 14: two deliberately wrong passes loaded as a plugin
(tests/plugins/buggy_passes.py) are caught within the default budget and reduced to a
reproducer of at most 5 ops; a correct pass passes; worker processes and a Dask
cluster run the same campaign.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import distributed
import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block, Region

from edge_opt.dialects import nn
from edge_opt.ir.model_io import load_model, read_npz
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.support.dtypes import to_dense
from edge_opt.testing import Campaign, RandomModel, run_campaign
from edge_opt.testing.campaign import forward_op_count, with_trainable_inputs
from edge_opt.testing.reduce import reduce_module
from edge_opt.tools.driver import main
from edge_opt.tools.fuzz import DEFAULT_EXAMPLES, FuzzJob, shards

BUGGY = str(Path(__file__).parent / "plugins" / "buggy_passes.py")


def fuzz(argv: list[str], capsys) -> tuple[int, str]:
    status = main(["fuzz", *argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def forward_ops(path: Path) -> list[str]:
    """The op names of the reproducer's @forward without func.return (counted here,
    not by the code under test)."""
    body = get_function(load_model(path), "forward").body.block
    return [op.name for op in body.ops if not isinstance(op, func.ReturnOp)]


def replay_argv(output: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith("replay: ")]
    words = shlex.split(line.removeprefix("replay: "))
    assert words[:2] == ["edge-opt", "fuzz"]
    return words[2:]


# --------------------------------------------------------------------------------------
# Acceptance: planted bugs are caught with the default budget, reproducers are small
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ops", "must_contain"),
    [
        ("swap-sub-operands", [], {"nn.sub"}),
        ("fuse-linear-bias-wrong", ["--ops", "linear,add"], {"nn.linear", "nn.add"}),
    ],
)
def test_planted_bug_is_caught_and_reduced(target, ops, must_contain, tmp_path, capsys):
    out = tmp_path / "repro"
    status, output = fuzz([target, *ops, "--out", str(out), "--load-plugin", BUGGY],
                          capsys)
    assert status == 1, output
    assert f"{target} changed the meaning of @forward" in output
    examples = int(output.split("FAILED after ")[1].split()[0])
    assert examples <= DEFAULT_EXAMPLES["interpreter"]
    ops_found = forward_ops(out / "repro.mlir")
    assert len(ops_found) <= 5, ops_found
    assert must_contain <= set(ops_found)
    forward = get_function(load_model(out / "repro.mlir"), "forward")
    assert set(read_npz(out / "repro_input.npz")) == set(input_names(forward))
    # The printed command replays the reproducer: it still fails...
    argv = replay_argv(output)
    assert argv[argv.index("--replay") + 1] == str(out / "repro.mlir")
    status, replayed = fuzz(argv, capsys)
    assert status == 1 and "FAILED on" in replayed
    # ...and a correct pass passes on it.
    status, replayed = fuzz(["canonicalize", "--replay", str(out / "repro.mlir")], capsys)
    assert status == 0 and "no difference" in replayed


def test_correct_pass_passes_a_short_campaign(capsys):
    status, output = fuzz(["fuse-linear-bias", "--ops", "linear,add", "--examples", "25",
                           "--load-plugin", BUGGY], capsys)
    assert status == 0, output
    assert "fuse-linear-bias (@forward): 25 examples in" in output
    assert "examples/s" in output and "FAILED" not in output
    covered = output.split("ops covered")[1]
    assert "nn.linear" in covered and "nn.add" in covered


def test_train_checks_the_training_step(tmp_path, capsys):
    out = tmp_path / "repro"
    status, output = fuzz(["swap-sub-operands", "--train", "--ops", "sub,tanh,linear",
                           "--out", str(out), "--load-plugin", BUGGY], capsys)
    assert status == 1, output
    assert "changed the meaning of @train_step" in output
    argv = replay_argv(output)
    assert "--train" in argv
    assert fuzz(argv, capsys)[0] == 1


def test_worker_processes_split_the_campaign(tmp_path, capsys):
    status, output = fuzz(["swap-sub-operands", "--workers", "2", "--examples", "40",
                           "--out", str(tmp_path), "--load-plugin", BUGGY], capsys)
    assert status == 1, output
    assert ", 2 workers" in output
    assert len(forward_ops(tmp_path / "repro.mlir")) <= 5


def test_dask_cluster_runs_the_campaign(tmp_path, capsys):
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        status, output = fuzz(["swap-sub-operands", "--workers", "2", "--dask",
                               cluster.scheduler_address, "--out", str(tmp_path),
                               "--load-plugin", BUGGY], capsys)
        assert status == 1, output
        assert ", 2 Dask tasks" in output
        status, output = fuzz(["fuse-linear-bias", "--ops", "linear,add", "--examples",
                               "10", "--dask", cluster.scheduler_address,
                               "--load-plugin", BUGGY], capsys)
        assert status == 0, output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "fuzz: give the pass or pipeline to fuzz, e.g. edge-opt fuzz canonicalize,cse"),
        (["cse", "--examples", "0"], "--examples must be at least 1, got 0"),
        (["cse", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["cse", "--max-ops", "0"], "--max-ops must be at least 1, got 0"),
        (["cse", "--train-pipeline", "train-full"],
         "--train-pipeline only takes effect with --train: add --train"),
        (["cse", "--input", "x.npz"],
         "--input only takes effect with --replay: add --replay MLIR"),
        (["cse", "--ops", ","], "--ops: give at least one op name"),
        (["cse", "--train", "--train-pipeline", "nope"],
         ("bad pipeline 'nope': Unrecognized passes: ['nope'] (see --list-passes and "
         "--list-pipelines)")),
        (["cse{frobnicate=1}"], "bad pipeline 'cse{frobnicate=1}'"),
    ],
)
def test_bad_arguments_are_one_line(argv, message, capsys):
    status, output = fuzz(argv, capsys)
    assert status == 1
    assert output.startswith(f"edge-opt: error: {message}")
    assert "Traceback" not in output


def test_replay_needs_the_inputs(tmp_path, capsys):
    model = tmp_path / "m.mlir"
    model.write_text("func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {\n"
                     "  func.return %x : tensor<2xf32>\n}\n")
    status, output = fuzz(["cse", "--replay", str(model)], capsys)
    assert status == 1
    assert output.strip() == (
        f"edge-opt: error: {tmp_path / 'm_input.npz'}: no such file (the inputs of "
        f"{model}; give them with --input NPZ)"
    )


def test_out_must_be_a_directory(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("")
    status, output = fuzz(["cse", "--out", str(file)], capsys)
    assert status == 1 and output.strip() == f"edge-opt: error: --out {file}: not a directory"


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


def test_shards_split_examples_and_seeds():
    job = FuzzJob("cse", Campaign(examples=100, seed=7), None)
    parts = shards(job, 3)
    assert [p.campaign.examples for p in parts] == [34, 33, 33]
    assert [p.campaign.seed for p in parts] == [7, 8, 9]
    assert [p.campaign.examples for p in shards(replace(job, campaign=Campaign(2)), 4)] == [1, 1]


def test_any_property_plugs_in_and_failures_are_reduced():
    """The engine is generic: here the "bug" is any model with an `nn.exp`."""

    def no_exp(model: RandomModel) -> None:
        if any(isinstance(op, nn.ExpOp) for op in model.module.walk()):
            raise AssertionError("exp!")

    result = run_campaign(Campaign(examples=60, ops=("exp", "relu", "tanh")), no_exp)
    assert result.failure is not None and result.failure.message == "exp!"
    assert result.failure.op_count == 1
    assert "nn.exp %x0" in result.failure.module_text
    clean = run_campaign(Campaign(examples=20, ops=("relu", "tanh")), no_exp)
    assert clean.failure is None and clean.examples == 20
    assert set(clean.op_counts) <= {"nn.relu", "nn.tanh", "nn.reshape", "nn.slice",
                                    "nn.concat", "nn.constant", "nn.add", "nn.load"}


def test_campaigns_are_deterministic_and_stop_on_request():
    def passes(model: RandomModel) -> None:
        pass

    first = run_campaign(Campaign(examples=15, seed=3), passes)
    second = run_campaign(Campaign(examples=15, seed=3), passes)
    assert first.op_counts == second.op_counts
    stopped = run_campaign(Campaign(examples=15), passes, should_stop=lambda: True)
    assert stopped.stopped and stopped.examples == 0


def _chain_module() -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """relu(relu(sub(x, c))) + an unused tanh(x) result returned too."""
    t = TensorType(f32, (2,))
    block = Block(arg_types=[t])
    x = block.args[0]
    x.name_hint = "x"
    c = nn.ConstantOp(to_dense(np.array([1.0, 2.0], dtype=np.float32), t))
    sub = nn.SubOp(x, c)
    r1 = nn.ReluOp(sub)
    r2 = nn.ReluOp(r1)
    tanh = nn.TanhOp(x)
    ops = [c, sub, r1, r2, tanh, func.ReturnOp(r2, tanh)]
    block.add_ops(ops)
    forward = func.FuncOp("forward", ([t], [t, t]), Region(block))
    return ModuleOp([forward]), {"x": np.array([0.5, -1.0], dtype=np.float32)}


def test_reducer_keeps_only_what_the_failure_needs():
    module, inputs = _chain_module()

    def no_sub(model: RandomModel) -> None:
        if any(isinstance(op, nn.SubOp) for op in model.module.walk()):
            raise AssertionError("sub")

    reduced, error = reduce_module(no_sub, module, inputs, AssertionError("sub"))
    assert str(error) == "sub"
    block = get_function(reduced, "forward").body.block
    assert [op.name for op in block.ops] == ["nn.sub", "func.return"]
    # The constant operand became the function's input of the same type.
    assert list(block.first_op.operands) == [block.args[0], block.args[0]]
    assert forward_op_count(module) == 5  # the original is left alone


def test_training_models_get_something_to_train():
    module, inputs = _chain_module()
    model = with_trainable_inputs(RandomModel(module, inputs))
    params = [op for op in model.module.ops if isinstance(op, nn.ParamOp)]
    assert [(p.sym_name.data, p.is_trainable) for p in params] == [("x_scale", True)]
    before = Session(module).run("forward", inputs)
    after = Session(model.module).run("forward", inputs)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
