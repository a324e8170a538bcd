"""Channel-restricted updates (`train.channels`) and `sparse-update`'s channel-level
selection.

The oracle of a restricted update is PyTorch: the parameter is the frozen tensor with
the trained channels written in (`index_copy`) from a leaf tensor of just those
channels, and `torch.optim` steps that leaf. So the selected channels must follow
torch's SGD / momentum / Adam (weight decay included) step by step, the optimizer state
must be torch's state of the leaf, and every other channel must stay bit-identical. Our
own unrestricted training step is a second reference for one step's selected rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pytest
import torch
from test_autodiff_oracles import (
    STEP_TOL,
    ModelBuilder,
    Trained,
    _f32,
    apply_pipeline,
    assert_close_per_param,
    tiny_cnn,
)
from torch_reference import TorchModel
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, f32, i64
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.dialects.train import CHANNEL_AXIS_ATTR, CHANNELS_ATTR
from edge_opt.ir.channels import restriction_of, set_restriction
from edge_opt.ir.cost import flops
from edge_opt.ir.report import build_report
from edge_opt.ir.session import Session

# --------------------------------------------------------------------------------------
# Models and helpers
# --------------------------------------------------------------------------------------


def mlp(seed: int = 0, widths: Sequence[int] = (6, 8, 5), batch: int = 4):
    """Linear layers with biases and relus between them; 5 classes by default."""
    b = ModelBuilder(seed, (batch, widths[0]))
    (h,) = b.args
    for i, (fan_in, out) in enumerate(pairwise(widths)):
        h = b(nn.LinearOp(h, b.param(f"w{i}", (out, fan_in)),
                          b.param(f"b{i}", (out,), "small")))
        if i < len(widths) - 2:
            h = b(nn.ReluOp(h))
    labels = b.rng.integers(0, widths[-1], batch).astype(np.int32)
    return b.module(h), b.inputs, labels


def restrict(module: ModuleOp, restrictions: dict[str, Sequence[int]]) -> ModuleOp:
    params = {o.sym_name.data: o for o in module.ops if isinstance(o, nn.ParamOp)}
    for name, channels in restrictions.items():
        set_restriction(params[name], channels)
    return module


def train_step(module: ModuleOp) -> func.FuncOp:
    return next(
        o for o in module.ops
        if isinstance(o, func.FuncOp) and o.sym_name.data == "train_step"
    )


class RestrictedTorch:
    """The torch oracle: each trained parameter is a leaf (the restricted ones: a leaf of
    their trained channels, `index_copy`-ed into the frozen rest)."""

    def __init__(self, module: ModuleOp, values, trainable: set[str],
                 restrictions: dict[str, Sequence[int]]):
        self.model = TorchModel(module, values, trainable=set())
        self.base = {n: self.model.params[n].detach() for n in trainable}
        self.index = {n: torch.tensor(list(c)) for n, c in restrictions.items()}
        self.leaves = {}
        for n, base in self.base.items():
            value = base[self.index[n]] if n in self.index else base
            self.leaves[n] = value.clone().requires_grad_(True)

    def _assemble(self) -> None:
        for n, leaf in self.leaves.items():
            self.model.params[n] = (
                self.base[n].index_copy(0, self.index[n], leaf) if n in self.index
                else leaf
            )

    def steps(self, optimizer: torch.optim.Optimizer, inputs, labels, count: int):
        losses = []
        for _ in range(count):
            optimizer.zero_grad()
            self._assemble()
            loss = self.model.loss(self.model(*inputs)[0], labels, "cross-entropy", "mean")
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        self._assemble()
        return losses

    def values(self) -> dict[str, np.ndarray]:
        return {n: self.model.params[n].detach().numpy() for n in self.leaves}


OPTIMIZERS = {
    "sgd + weight decay": (
        "lr=0.1 weight_decay=0.01",
        lambda leaves: torch.optim.SGD(leaves, lr=_f32(0.1), weight_decay=_f32(0.01)),
        {},
    ),
    "nesterov momentum": (
        "lr=0.05 momentum=0.9 nesterov=true",
        lambda leaves: torch.optim.SGD(
            leaves, lr=_f32(0.05), momentum=_f32(0.9), nesterov=True
        ),
        {"momentum": "momentum_buffer"},
    ),
    "adam + weight decay": (
        "optimizer=adam lr=0.01 beta1=0.8 weight_decay=0.01",
        lambda leaves: torch.optim.Adam(
            leaves, lr=_f32(0.01), betas=(_f32(0.8), _f32(0.999)),
            weight_decay=_f32(0.01),
        ),
        {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    ),
}

MODELS = {
    # Both layers restricted; the head's bias to other channels than its weight.
    "mlp": (mlp, {"w0": (1, 4, 6), "b0": (1, 4, 6), "w1": (0, 3), "b1": (2,)}),
    # conv2 and the head restricted; conv1 and the batch norm train whole.
    "tiny cnn": (
        tiny_cnn,
        {"conv2_weight": (2, 5, 7), "conv2_bias": (2, 5, 7), "fc_weight": (0, 9)},
    ),
}

# --------------------------------------------------------------------------------------
# Restricted updates against torch.optim
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_restricted_update_is_torch_optim_on_the_channels(model_name, optimizer_name):
    build, restrictions = MODELS[model_name]
    options, make_optimizer, state = OPTIMIZERS[optimizer_name]
    module, inputs, labels = build()
    restrict(module, restrictions)
    steps = 2
    trained = Trained(module, f"train-full{{{options}}}", inputs, labels, steps)
    oracle = RestrictedTorch(trained.original, trained.before, trained.trainable,
                             restrictions)
    optimizer = make_optimizer(list(oracle.leaves.values()))
    losses = oracle.steps(optimizer, inputs, labels, steps)
    np.testing.assert_allclose(trained.losses, losses, rtol=1e-5)
    expected = oracle.values()
    assert_close_per_param(
        {n: trained.after[n].astype(np.float64) - trained.before[n]
         for n in trained.trainable},
        {n: expected[n] - trained.before[n] for n in trained.trainable},
        STEP_TOL,
        "parameter change",
    )
    for name, channels in restrictions.items():
        others = np.setdiff1d(np.arange(trained.before[name].shape[0]), channels)
        assert others.size
        assert trained.after[name][others].tobytes() == \
            trained.before[name][others].tobytes(), f"@{name}: an untrained channel moved"
        assert not np.array_equal(trained.after[name][list(channels)],
                                  trained.before[name][list(channels)])
    # The optimizer state has the trained channels' shape and holds torch's state.
    ours, theirs = {}, {}
    for name in trained.trainable:
        for kind, key in state.items():
            ours[f"{name}_{kind}"] = trained.after[f"{name}_{kind}"]
            theirs[f"{name}_{kind}"] = optimizer.state[oracle.leaves[name]][key].numpy()
            assert ours[f"{name}_{kind}"].shape == tuple(oracle.leaves[name].shape)
    assert_close_per_param(ours, theirs, STEP_TOL, "optimizer state")


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_selected_rows_are_those_of_the_unrestricted_step(model_name):
    build, restrictions = MODELS[model_name]
    module, inputs, labels = build()
    full = Trained(module.clone(), "train-full{lr=0.1}", inputs, labels)
    part = Trained(restrict(module, restrictions), "train-full{lr=0.1}", inputs, labels)
    np.testing.assert_array_equal(part.before[next(iter(restrictions))],
                                  full.before[next(iter(restrictions))])
    for name in full.trainable:
        rows = list(restrictions.get(name, range(full.before[name].shape[0])))
        np.testing.assert_allclose(
            part.after[name][rows], full.after[name][rows], rtol=1e-6, atol=1e-7,
            err_msg=f"@{name}",
        )


def test_a_restriction_to_every_channel_is_the_full_update():
    module, inputs, labels = mlp()
    full = Trained(module.clone(), "train-full{lr=0.1}", inputs, labels)
    every = Trained(restrict(module, {"w1": range(5)}), "train-full{lr=0.1}", inputs,
                    labels)
    assert not any(isinstance(o, train.ScatterOp) for o in train_step(every.module).walk())
    for name in full.trainable:
        np.testing.assert_array_equal(every.after[name], full.after[name])


# --------------------------------------------------------------------------------------
# The IR: the weight gradient has the restricted shape and k/O of the FLOPs
# --------------------------------------------------------------------------------------


def _first(step: func.FuncOp, op_type, where=lambda op: True):
    return next(o for o in step.body.block.ops if isinstance(o, op_type) and where(o))


def test_weight_gradient_ops_have_the_restricted_shape():
    module, _, _ = tiny_cnn()
    unrestricted = module.clone()
    apply_pipeline(unrestricted, "train-full")
    restrict(module, {"conv2_weight": (2, 5, 7), "conv2_bias": (2, 5, 7),
                      "fc_weight": (0, 9)})
    apply_pipeline(module, "train-full")
    step = train_step(module)
    conv = _first(step, train.Conv2dGradWeightOp)
    assert conv.result.type.get_shape() == (3, 4, 3, 3)
    gather = conv.grad.owner
    assert isinstance(gather, nn.GatherOp)
    assert gather.indices.get_values() == (2, 5, 7) and gather.axis.value.data == 1
    full_conv = _first(train_step(unrestricted), train.Conv2dGradWeightOp)
    assert flops(conv) * 8 == flops(full_conv) * 3
    linear = _first(step, train.LinearGradWeightOp)
    assert linear.result.type.get_shape() == (2, 8)
    assert flops(linear) * 10 == flops(_first(train_step(unrestricted),
                                              train.LinearGradWeightOp)) * 2
    # The bias gradient shares the gather of dy with its weight.
    bias_grad = _first(step, nn.ReduceSumOp,
                       lambda o: o.result.type.get_shape() == (3,))
    assert bias_grad.input is gather.result


def test_update_is_gather_optimizer_scatter_store():
    module, _, _ = mlp()
    restrict(module, {"w1": (0, 3)})
    apply_pipeline(module, "train-full{momentum=0.9}")
    ops = list(train_step(module).body.block.ops)
    store = next(o for o in ops if isinstance(o, train.StoreOp)
                 and o.param.string_value() == "w1")
    scatter = store.value.owner
    assert isinstance(scatter, train.ScatterOp)
    assert scatter.indices.get_values() == (0, 3)
    update = scatter.values.owner
    assert isinstance(update, train.SgdMomentumOp)
    selection = update.param.owner
    assert isinstance(selection, nn.GatherOp) and selection.input is scatter.dest
    assert isinstance(selection.input.owner, nn.LoadOp)
    assert isinstance(update.grad.owner, train.LinearGradWeightOp)
    order = [ops.index(o) for o in (update.grad.owner, selection, update, scatter, store)]
    assert order == sorted(order)
    buffer = next(o for o in module.ops if isinstance(o, nn.ParamOp)
                  and o.sym_name.data == "w1_momentum")
    assert buffer.type.get_shape() == (2, 8)


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, state_copies", [("sgd", 0), ("sgd momentum=0.9", 1),
                                                      ("adam", 2)])
def test_report_counts_the_trained_channels(optimizer, state_copies):
    module, _, _ = mlp()
    restrict(module, {"w0": (1, 4, 6), "b0": (1, 4, 6)})
    unrestricted = module.clone()
    restrict(unrestricted, {"w0": None, "b0": None})
    spec = f"train-full{{optimizer={optimizer}}}"
    apply_pipeline(module, spec)
    apply_pipeline(unrestricted, spec)
    report, full = build_report(module), build_report(unrestricted)
    rows = {r.name: r for r in report.parameters}
    full_rows = {r.name: r for r in full.parameters}
    assert rows["w0"].params == 48 and rows["w0"].trained_params == 3 * 6
    assert rows["b0"].trained_params == 3
    assert rows["w0"].gradient_bytes == 4 * 3 * 6 and rows["b0"].gradient_bytes == 4 * 3
    assert rows["w0"].optimizer_state_bytes == state_copies * 4 * 3 * 6
    assert rows["w1"].trained_params == rows["w1"].params == 40
    assert report.trainable_params == 18 + 3 + 40 + 5
    assert report.gradient_bytes == 4 * report.trainable_params
    step_bytes = 4 if optimizer == "adam" else 0
    assert report.optimizer_state_bytes == state_copies * 4 * report.trainable_params \
        + step_bytes
    # The weight gradient costs 3/8 of the full one; the optimizer touches 3/8 too.
    assert rows["w0"].flops_backward * 8 == full_rows["w0"].flops_backward * 3
    assert rows["w0"].flops_optimizer * 8 == full_rows["w0"].flops_optimizer * 3
    assert report.backward_memory_bytes == (
        report.saved_activation_bytes + report.gradient_bytes
        + report.optimizer_state_bytes
    )
    assert report.backward_memory_bytes < full.backward_memory_bytes


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def _matmul_model() -> ModuleOp:
    b = ModelBuilder(0, (2, 3))
    (x,) = b.args
    h = b(nn.MatmulOp(x, b.param("w", (3, 4))))
    return b.module(h)


def _grouped_conv_model() -> ModuleOp:
    b = ModelBuilder(0, (1, 4, 3, 3))
    (x,) = b.args
    y = b(nn.Conv2dOp(x, b.param("w", (4, 2, 1, 1)), groups=2))
    return b.module(b(nn.ReshapeOp(y, (1, 36))))


@pytest.mark.parametrize(
    "build, channels, attrs, message",
    [
        (_matmul_model, (1,), {},
         ("autodiff: @w is updated by channel (train.channels) but nn.matmul reads it; "
          "only the weight or bias of nn.linear and of nn.conv2d with groups = 1 can be")),
        (_grouped_conv_model, (1,), {},
         "but nn.conv2d (groups = 2) reads it"),
        (lambda: mlp()[0], (3, 1), {"name": "w0"},
         "autodiff: @w0: train.channels must be non-empty, sorted and unique, got [3, 1]"),
        (lambda: mlp()[0], (1, 8), {"name": "w0"},
         ("autodiff: @w0: train.channels must lie in [0, 8) (axis 0 of "
          "tensor<8x6xf32>), got [1, 8]")),
        (lambda: mlp()[0], (1,), {"name": "w0", "axis": 1},
         "autodiff: @w0: train.channel_axis is 1; only axis 0"),
        (lambda: mlp()[0], (1,), {"name": "w0", "drop": CHANNEL_AXIS_ATTR},
         "autodiff: @w0 has train.channels but no train.channel_axis"),
    ],
    ids=["matmul", "grouped-conv", "unsorted", "range", "axis", "no-axis"],
)
def test_unsupported_restrictions_are_clean_errors(build, channels, attrs, message):
    module = build()
    name = attrs.get("name", "w")
    param = next(o for o in module.ops if isinstance(o, nn.ParamOp)
                 and o.sym_name.data == name)
    param.attributes[CHANNELS_ATTR] = DenseArrayBase.from_list(i64, list(channels))
    param.attributes[CHANNEL_AXIS_ATTR] = IntegerAttr(attrs.get("axis", 0), 64)
    if "drop" in attrs:
        del param.attributes[attrs["drop"]]
    with pytest.raises(PassFailedException) as error:
        apply_pipeline(module, "train-full")
    assert message in str(error.value)


def test_restriction_attributes_round_trip():
    module, _, _ = mlp()
    restrict(module, {"w0": (5, 1)})
    param = next(o for o in module.ops if isinstance(o, nn.ParamOp)
                 and o.sym_name.data == "w0")
    restriction = restriction_of(param)
    assert restriction is not None and restriction.channels == (1, 5)
    set_restriction(param, None)
    assert restriction_of(param) is None and CHANNELS_ATTR not in param.attributes


# --------------------------------------------------------------------------------------
# sparse-update: channel-level selection under a budget
# --------------------------------------------------------------------------------------


def _selection(module: ModuleOp) -> dict[str, tuple[int, ...] | None]:
    """Trained parameters and their channels (None: all)."""
    selected = {}
    for o in module.ops:
        if isinstance(o, nn.ParamOp) and o.is_trainable:
            r = restriction_of(o)
            selected[o.sym_name.data] = None if r is None else r.channels
    return selected


@pytest.mark.parametrize(
    "build, budget_kib",
    [(lambda: tiny_cnn()[0], 4.5), (lambda: mlp(1, (16, 64, 64, 10), 8)[0], 9.0)],
    ids=["tiny cnn", "mlp"],
)
def test_train_sparse_selects_channels_within_the_budget(build, budget_kib, capsys):
    with_channels = build()
    apply_pipeline(with_channels, f"train-sparse{{budget-kib={budget_kib}}}")
    selected = _selection(with_channels)
    assert any(c is not None for c in selected.values()), selected
    report = build_report(with_channels)
    assert report.backward_memory_bytes <= budget_kib * 1024
    table = capsys.readouterr().err
    assert " of " in table and "channels (total" in table
    # The channels trained are the selection's: the gradient ops have its shape.
    without = build()
    apply_pipeline(without, f"sparse-update{{budget-kib={budget_kib} channels=false}},"
                            "autodiff")
    assert all(c is None for c in _selection(without).values())
    fewer = build_report(without)
    assert fewer.backward_memory_bytes <= budget_kib * 1024
    assert fewer.trainable_params < report.trainable_params
    # And the selection trains: a step moves exactly the selected channels.
    session = Session(with_channels)
    before = {n: v.copy() for n, v in session.params.items()}
    batch = _batch(with_channels)
    session.run("train_step", batch)
    for name, channels in selected.items():
        moved = np.flatnonzero(np.any(
            (session.params[name] != before[name]).reshape(before[name].shape[0], -1),
            axis=1,
        ))
        if channels is not None:
            assert set(moved) <= set(channels)


def test_train_sparse_channels_fit_where_no_whole_layer_does(capsys):
    """Under a budget below every whole layer, only a partial layer fits."""
    module = mlp(1, (16, 64, 64, 10), 8)[0]
    budget = 3.0  # the head alone needs 4.9 KiB, 2 of its 10 channels 2.8 KiB
    with pytest.raises(PassFailedException, match="too small"):
        apply_pipeline(module.clone(), f"sparse-update{{budget-kib={budget} "
                                       "channels=false}")
    apply_pipeline(module, f"train-sparse{{budget-kib={budget}}}")
    selected = _selection(module)
    assert selected and all(c is not None for c in selected.values()), selected
    assert build_report(module).backward_memory_bytes <= budget * 1024


def _batch(module: ModuleOp) -> list[np.ndarray]:
    step = train_step(module)
    rng = np.random.default_rng(0)
    args = []
    for arg in step.body.block.args:
        shape = arg.type.get_shape()
        if arg.type.element_type == f32:
            args.append(rng.standard_normal(shape).astype(np.float32))
        else:
            args.append(rng.integers(0, 2, shape).astype(np.int32))
    return args


@pytest.mark.parametrize("optimizer", ["optimizer=adam", "momentum=0.9"])
def test_sparse_update_budgets_the_optimizer_state(optimizer, capsys):
    """With the training step's optimizer, its state counts: the selection still fits."""
    module = tiny_cnn()[0]
    apply_pipeline(module, f"sparse-update{{budget-kib=6 {optimizer}}},"
                           f"autodiff{{{optimizer}}}")
    report = build_report(module)
    assert report.optimizer_state_bytes > 0
    assert report.backward_memory_bytes <= 6 * 1024
    assert _selection(module)["conv2_weight"] is not None  # a partial conv2 fits
