"""`edge-opt report`, the FLOP cost model, `run --steps` and `train-sparse`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block

from edge_opt.dialects import nn, train
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.cost import FLOPS, flops
from edge_opt.ir.report import build_report
from edge_opt.ir.session import Session
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"


def _apply(module: ModuleOp, spec: str) -> ModuleOp:
    for p in expand(parse_pipeline(spec)):
        p.apply(make_context(), module)
        module.verify()
    return module


def test_every_op_has_a_flop_count():
    """Convention: the report never meets an op it cannot count."""
    missing = [
        op.name
        for dialect in (nn.NN, train.TRAIN)
        for op in dialect.operations
        if op not in FLOPS
    ]
    assert missing == []


def test_flops_of_the_activations_and_pad():
    """One per output element for the element-wise ops with parameters and the
    rounding ops, two for their gradients; padding moves data (free)."""
    block = Block()
    x = _arg(block, (2, 3, 4))
    for op in (nn.ClipOp(x, 0.0, 6.0), nn.HardsigmoidOp(x), nn.EluOp(x),
               nn.LeakyReluOp(x), nn.RoundOp(x), nn.CeilOp(x), nn.FloorOp(x)):
        assert flops(op) == 24, op.name
    for op in (train.ClipGradOp(x, x, None, 1.0), train.HardsigmoidGradOp(x, x, 0.2),
               train.EluGradOp(x, x, 1.0), train.LeakyReluGradOp(x, x, 0.1)):
        assert flops(op) == 48, op.name
    assert flops(nn.PadOp(x, (0, 1, 1, 0, 0, 2))) == 0


def _torch_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _arg(block: Block, shape) -> TensorType:
    return block.insert_arg(TensorType(f32, shape), len(block.args))


@settings(max_examples=25)
@given(
    n=st.integers(1, 2), groups=st.sampled_from([1, 2]), k=st.integers(1, 3),
    stride=st.integers(1, 2), size=st.integers(5, 8), per_group=st.integers(1, 3),
)
def test_conv_flops_match_torch_counter(n, groups, k, stride, size, per_group):
    c, o = 2 * per_group, 2 * (per_group + 1)
    block = Block()
    x, w = _arg(block, (n, c, size, size)), _arg(block, (o, c // groups, k, k))
    conv = nn.Conv2dOp(x, w, stride=(stride, stride), groups=groups)
    xt, wt = torch.randn(n, c, size, size), torch.randn(o, c // groups, k, k)
    expected = _torch_flops(
        lambda: torch.nn.functional.conv2d(xt, wt, stride=stride, groups=groups)
    )
    assert flops(conv) == expected
    wt_t = torch.randn(c, o // groups, k, k)
    block2 = Block()
    x2, w2 = _arg(block2, (n, c, size, size)), _arg(block2, (c, o // groups, k, k))
    transposed = nn.ConvTranspose2dOp(x2, w2, stride=(stride, stride), groups=groups)
    expected_t = _torch_flops(
        lambda: torch.nn.functional.conv_transpose2d(
            xt, wt_t, stride=stride, groups=groups
        )
    )
    assert flops(transposed) == expected_t


@settings(max_examples=25)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2), m=st.integers(1, 5),
    k=st.integers(1, 5), n=st.integers(1, 5),
)
def test_matmul_and_linear_flops_match_torch_counter(batch, m, k, n):
    block = Block()
    a, b = _arg(block, (*batch, m, k)), _arg(block, (k, n))
    at, bt = torch.randn(*batch, m, k), torch.randn(k, n)
    assert flops(nn.MatmulOp(a, b)) == _torch_flops(lambda: torch.matmul(at, bt))
    w = _arg(block, (n, k))
    linear = nn.LinearOp(a, w)
    wt = torch.randn(n, k, requires_grad=True)
    xt = torch.randn(*batch, m, k, requires_grad=True)
    assert flops(linear) == _torch_flops(lambda: torch.nn.functional.linear(xt, wt))
    # Backward: torch counts the two gradient matrix products.
    dy = _arg(block, (*batch, m, n))
    ours = flops(train.LinearGradInputOp(dy, w)) + flops(train.LinearGradWeightOp(dy, a))
    y = torch.nn.functional.linear(xt, wt)
    assert ours == _torch_flops(lambda: y.sum().backward())


def test_report_of_the_example_adds_up():
    module = _apply(model_io.load_model(EXAMPLE), "train-last{layers=2 momentum=0.9}")
    report = build_report(module, "train-last")
    trained = [p for p in report.parameters if p.trainable]
    assert {p.name for p in trained} == {"conv2_weight", "conv2_bias", "fc_weight", "fc_bias"}
    assert report.trainable_params == 288 + 8 + 80 + 10
    assert report.total_params == 442
    assert report.gradient_bytes == 4 * report.trainable_params
    assert report.optimizer_state_bytes == report.gradient_bytes  # one momentum buffer each
    # Phases partition the training step.
    step = next(o for o in module.ops if isinstance(o, func.FuncOp) and o.sym_name.data == "train_step")
    total = sum(flops(o) for o in step.body.block.ops)
    assert total == (
        report.flops_forward + report.flops_loss + report.flops_backward
        + report.flops_optimizer
    )
    # Per-parameter weight-gradient FLOPs: the conv's is its MAC count times 2.
    conv2 = next(p for p in report.parameters if p.name == "conv2_weight")
    assert conv2.flops_backward == 2 * (4 * 8 * 3 * 3) * (4 * 3 * 3)
    assert report.backward_memory_bytes == (
        report.saved_activation_bytes + report.gradient_bytes + report.optimizer_state_bytes
    )


def test_max_pool_backward_keeps_an_index_mask_not_its_input():
    """The training step of the example saves the pool's ui8 mask: 1 byte per pooled
    element, instead of the 4-byte pool input (4x as many elements)."""
    trained = _apply(model_io.load_model(EXAMPLE), "train-full")
    step = next(o for o in trained.ops if isinstance(o, func.FuncOp) and o.sym_name.data == "train_step")
    pool = next(o for o in step.body.block.ops if isinstance(o, train.MaxPool2dWithIndicesOp))
    backward_operands = {
        operand
        for op in step.body.block.ops
        if isinstance(op, train.MaxPool2dGradOp)
        for operand in op.operands
    }
    assert pool.indices in backward_operands and pool.input not in backward_operands


@pytest.mark.slow
def test_cct2_trainable_parameter_counts(shared_model):
    onnx_path = shared_model("CCT_Train_CCT2_FT2") / "network_infer.onnx"
    base = import_onnx(onnx_path)
    last = build_report(_apply(base.clone(), "train-last{layers=1}"))
    full = build_report(_apply(base.clone(), "train-full"))
    assert last.trainable_params == 1_290
    assert full.trainable_params == full.total_params == 283_979
    assert full.flops_backward > full.flops_forward > last.flops_backward


def test_train_sparse_selection_fits_its_budget(capsys):
    for budget in (4.0, 16.0):
        module = _apply(model_io.load_model(EXAMPLE), f"train-sparse{{budget-kib={budget}}}")
        report = build_report(module)
        assert 0 < report.trainable_params
        assert report.backward_memory_bytes <= budget * 1024
    table = capsys.readouterr().err
    assert "sparse-update: budget 16 KiB" in table and "selected" in table
    assert "over budget" in table  # 4 KiB cannot hold everything


def test_train_sparse_too_small_budget_is_a_clean_error(capsys):
    code = main([str(EXAMPLE), "--pipeline", "train-sparse{budget-kib=0.01}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "sparse-update: budget-kib=0.01 is too small" in err and "Traceback" not in err


def test_report_cli_json_and_compare(capsys):
    assert main(["report", str(EXAMPLE), "--pipeline", "train-full", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("trainable_params", "total_params", "flops_forward", "flops_backward"):
        assert isinstance(data[key], int)
    assert data["trainable_params"] == 434  # all but the batch-norm running statistics
    assert main(["report", str(EXAMPLE), "--compare", "train-full", "train-last", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert set(compared) == {"train-full", "train-last"}
    assert compared["train-last"]["trainable_params"] == 90
    assert main(["report", str(EXAMPLE), "--compare", "train-full", "train-last"]) == 0
    table = capsys.readouterr().out
    assert "train-full" in table and "434 of 442" in table and "90 of 442" in table


def test_run_steps_prints_loss_and_saves_trained_parameters(tmp_path: Path, capsys):
    saved = tmp_path / "trained.npz"
    code = main([
        "run", str(EXAMPLE), "--pipeline", "train-full{lr=0.1}", "--function",
        "train_step", "--input", str(EXAMPLE_INPUT), "--steps", "3", "--save-params",
        str(saved),
    ])
    assert code == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step")]
    losses = [float(l.split()[-1]) for l in lines]
    assert [l.split()[:3] for l in lines] == [["step", str(i), "loss"] for i in (1, 2, 3)]
    assert losses[2] < losses[0]
    written = model_io.read_npz(saved)
    # The same three steps through the Python API give the same parameters.
    module = _apply(model_io.load_model(EXAMPLE), "train-full{lr=0.1}")
    session = Session(module)
    data = model_io.read_npz(EXAMPLE_INPUT)
    for _ in range(3):
        session.run("train_step", data)
    assert set(written) == set(session.params)
    for name, value in session.params.items():
        np.testing.assert_array_equal(written[name], value)
    assert not np.array_equal(written["fc_weight"], model_io.read_npz(EXAMPLE.with_suffix(".npz"))["fc_weight"])


def test_run_rejects_bad_steps(capsys):
    assert main(["run", str(EXAMPLE), "--steps", "0"]) == 1
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_optimizer_report_flag_matches_the_report_command(tmp_path, capsys):
    """`edge-opt model --pipeline P --report --json` is `edge-opt report model --pipeline
    P --json`; `--memory-map` draws the plan."""
    assert main([str(EXAMPLE), "--pipeline", "train-last{layers=2}", "--report", "--json"]) == 0
    flag = json.loads(capsys.readouterr().out)
    assert main(["report", str(EXAMPLE), "--pipeline", "train-last{layers=2}", "--json"]) == 0
    command = json.loads(capsys.readouterr().out)
    assert flag == command
    picture = tmp_path / "plan.png"
    assert main([str(EXAMPLE), "--pipeline", "train-full", "--memory-map", str(picture)]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
