"""`sparse-update`: chooses which layers (and channels) train under a backward-memory
budget.

After TinyTrain (Kwon et al., 2024) and sparse update (Lin et al., 2022): train the layers
that buy the most loss reduction per byte and FLOP of backward work, within the budget;
where it pays, train only the most important output channels of a layer.

The options, per parametrised layer `l` (see `edge_opt.ir.layers`): train all of its
trainable parameters, or — with `channels` (default), when every one of them can be
updated by channel (the weight and bias of an `nn.linear`, or of an `nn.conv2d` with
`groups = 1`, see `edge_opt.ir.channels`) — only its top-k output channels by Fisher
information, for k = O/4 and O/2 of its O channels (at least 1, fewer than O). A partial
option saves weight-gradient bytes, optimizer state and weight-gradient FLOPs (k/O of
them), not the saved input activation.

The criterion, per option `o`:

- importance `F_o`: the empirical Fisher information of the parameters it trains on a
  calibration batch, `sum of g^2` over the trained elements, with `g` the gradient of the
  mean loss (computed by interpreting a training step in which every candidate trains);
  a channel's Fisher is the sum over its slice of the weight and bias, and the top-k
  channels are those with the largest;
- cost: the backward memory `M_o` (saved activations + weight gradients + optimizer
  state, as `edge-opt report` counts it) and backward FLOPs `C_o` of training `o` alone
  (which includes backpropagating from the loss down to the layer), read off one
  training step in which every candidate trains (`edge_opt.ir.subset_costs`: equal to
  the report of a step built for `o` alone, without differentiating per candidate);
- score `S_o = (F_o / sum F) / (M_o / sum M + C_o / sum C)`, the sums over the whole
  layers: importance per unit of relative cost.

Options are taken in decreasing score, all layers' together; each is added if the
selection (costed the same way) stays within `budget-kib` of backward memory, else skipped. A layer is selected at most once, in one form: an option of a layer
already selected in that form or a wider one is skipped, and one that widens it (more of
its channels, or all of them) replaces the narrower form if the wider selection still
fits. So a partial option pays when it fits where the whole layer does not (the whole
layer comes later and is over budget), or when its higher score wins it budget before
other layers; a layer ends up whole whenever the budget allows it after the better
options. Parameters outside the selection are frozen; those of a partially selected layer
get `train.channels` / `train.channel_axis`. The pass prints its table (importance, costs,
score and decision per option) to stderr.

Options: `budget-kib` (required size, KiB of backward memory), `channels` (consider
channel-level options; default true), `calibration` (an `.npz` with the forward's inputs
and `labels`; default a seeded random batch), the `LossOptions` and `OptimizerOptions`
groups (the training step's: its optimizer state counts in the budget, Adam keeps two
moments per trained element, momentum SGD one buffer; a training pipeline hands its own
groups) and `seed`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.train_step import add_train_step, find_function
from edge_opt.dialects import nn, train
from edge_opt.ir import model_io
from edge_opt.ir.channels import output_channels, set_restriction
from edge_opt.ir.layers import Layer, parametrised_layers
from edge_opt.ir.options import (
    EdgeOptPass,
    LossOptions,
    OptimizerOptions,
    group_values,
)
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.ir.subset_costs import SubsetCosts
from edge_opt.ir.trainable import model_params, set_trainable
from edge_opt.support.dtypes import numpy_dtype

Restrictions = dict[str, tuple[int, ...]]
"""Parameter name to the channels (of axis 0) it trains, for the restricted ones."""


@dataclass
class Option:
    """One option: a layer trained whole (`channels` None) or at some channels."""

    layer: Layer
    params: int
    fisher: float
    memory: int
    flops: int
    trained: tuple[str, ...] = ()
    channels: tuple[int, ...] | None = None
    out_channels: int = 0
    score: float = 0.0
    selected: bool = False
    reason: str = ""

    @property
    def label(self) -> str:
        if self.channels is None:
            return "all"
        return f"{len(self.channels)}/{self.out_channels} ch"

    @property
    def width(self) -> int:
        """How much of the layer it trains (channels; the whole layer is widest)."""
        return len(self.channels) if self.channels is not None else sys.maxsize

    def restrictions(self) -> Restrictions:
        if self.channels is None:
            return {}
        return {name: self.channels for name in self.trained}


@dataclass(frozen=True)
class SparseUpdatePass(EdgeOptPass, OptimizerOptions, LossOptions):
    """Selects the layers (and channels) to train under a backward-memory budget
    (module docstring)."""

    name = "sparse-update"

    budget_kib: float = 64.0
    channels: bool = True
    calibration: str | None = None
    seed: int = 0
    function: str = "forward"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.budget_kib <= 0:
            raise PassFailedException(
                f"sparse-update: budget-kib must be > 0, got {self.budget_kib}"
            )
        params = {p.sym_name.data: p for p in model_params(op)}
        for param in params.values():
            set_restriction(param, None)  # this pass decides what trains
        candidates = {n for n, p in params.items() if p.is_trainable}
        forward = find_function(op, self.function)
        layers = [
            layer
            for layer in parametrised_layers(forward)
            if any(n in candidates for n in layer.params)
        ]
        if not layers:
            raise PassFailedException("sparse-update: no layer has a trainable parameter")
        fisher = self._fisher(op, candidates)
        costs = self._costs(op, candidates)
        options = [
            option
            for layer in layers
            for option in self._layer_options(
                costs, forward, layer, tuple(n for n in layer.params if n in candidates),
                fisher, params,
            )
        ]
        selection, restrictions = self._select(costs, options)
        for name, param in params.items():
            set_trainable(param, name in selection)
            set_restriction(param, restrictions.get(name))
        print(format_selection(options, self.budget_kib), file=sys.stderr, end="")

    def _layer_options(
        self,
        costs: SubsetCosts,
        forward: func.FuncOp,
        layer: Layer,
        trained: tuple[str, ...],
        fisher: dict[str, np.ndarray],
        params: dict[str, nn.ParamOp],
    ) -> list[Option]:
        """The whole layer and, with `channels` and a restrictable layer, its top-k
        output channels by Fisher information for k = O/4 and O/2 (at least 1, < O)."""
        options = [self._option(costs, layer, trained, None, fisher, params)]
        out = _restrictable(forward, params, trained) if self.channels else None
        if out is None:
            return options
        per_channel = sum(
            fisher[n].reshape(out, -1).astype(np.float64).sum(axis=1) for n in trained
        )
        ranked = sorted(range(out), key=lambda c: (-per_channel[c], c))
        for k in sorted({max(1, out // 4), max(1, out // 2)} - {out}):
            top = tuple(sorted(ranked[:k]))
            options.append(self._option(costs, layer, trained, top, fisher, params))
        return options

    def _option(
        self,
        costs: SubsetCosts,
        layer: Layer,
        trained: tuple[str, ...],
        channels: tuple[int, ...] | None,
        fisher: dict[str, np.ndarray],
        params: dict[str, nn.ParamOp],
    ) -> Option:
        option = Option(layer, 0, 0.0, 0, 0, trained, channels)
        if channels is not None:
            option.out_channels = params[trained[0]].type.get_shape()[0]
        for name in trained:
            squares = fisher[name].astype(np.float64)
            if channels is not None:
                squares = squares[list(channels)]
            option.params += squares.size
            option.fisher += float(np.sum(squares))
        option.memory, option.flops = _cost(costs, set(trained), option.restrictions())
        return option

    def _fisher(self, module: ModuleOp, trainable: set[str]) -> dict[str, np.ndarray]:
        """Squared gradient of every element of every candidate parameter on the
        calibration batch."""
        probe = module.clone()
        for param in model_params(probe):
            set_trainable(param, param.sym_name.data in trainable)
        add_train_step(probe, self.function, self.loss, "mean", OptimizerOptions(lr=1.0))
        session = Session(probe)
        before = {k: v.astype(np.float64) for k, v in session.params.items()}
        session.run("train_step", self._calibration_batch(probe))
        return {name: (before[name] - session.params[name]) ** 2 for name in trainable}

    def _calibration_batch(self, module: ModuleOp) -> dict[str, np.ndarray]:
        step = get_function(module, "train_step")
        names = input_names(step)
        if self.calibration is not None:
            data = model_io.read_npz(self.calibration)
            missing = [n for n in names if n not in data]
            if missing:
                raise PassFailedException(
                    f"sparse-update: calibration file {self.calibration} lacks "
                    f"{', '.join(missing)} (it needs {', '.join(names)})"
                )
            return {n: data[n] for n in names}
        rng = np.random.default_rng(self.seed)
        batch = {}
        for name, arg in zip(names, step.body.block.args):
            assert isinstance(arg.type, TensorType)
            shape, dtype = arg.type.get_shape(), numpy_dtype(arg.type.element_type)
            if dtype.kind == "f":
                batch[name] = rng.standard_normal(shape).astype(dtype)
            else:
                batch[name] = rng.integers(0, _classes(step), shape).astype(dtype)
        return batch

    def _costs(self, module: ModuleOp, candidates: set[str]) -> SubsetCosts:
        return subset_costs(
            module, candidates, self.function,
            lambda probe: add_train_step(
                probe, self.function, self.loss, self.reduction,
                OptimizerOptions(**group_values(self, OptimizerOptions)),
            ),
        )

    def _select(
        self, costs: SubsetCosts, options: list[Option]
    ) -> tuple[set[str], Restrictions]:
        whole = [o for o in options if o.channels is None]
        total_f = sum(o.fisher for o in whole) or 1.0
        total_m = sum(o.memory for o in whole) or 1
        total_c = sum(o.flops for o in whole) or 1
        for o in options:
            o.score = (o.fisher / total_f) / (o.memory / total_m + o.flops / total_c)
        budget = self.budget_kib * 1024
        chosen: dict[int, Option] = {}  # by id of the layer
        for o in sorted(options, key=lambda o: -o.score):
            current = chosen.get(id(o.layer))
            if current is not None and current.width >= o.width:
                o.reason = f"layer already selected ({current.label})"
                continue
            trial = {**chosen, id(o.layer): o}
            memory, _ = _cost(costs, *_merged(trial.values()))
            if memory > budget:
                o.reason = f"over budget (total would be {memory / 1024:.2f} KiB)"
                continue
            if current is not None:
                current.selected = False
                current.reason = f"widened to {o.label} (below)"
            chosen = trial
            o.selected = True
            what = "" if o.channels is None else (
                f", {len(o.channels)} of {o.out_channels} channels"
            )
            o.reason = f"selected{what} (total {memory / 1024:.2f} KiB)"
        if not chosen:
            cheapest = min(options, key=lambda o: o.memory)
            raise PassFailedException(
                f"sparse-update: budget-kib={self.budget_kib:g} is too small: the "
                f"cheapest layer alone needs {cheapest.memory / 1024:.2f} KiB of "
                f"backward memory ({cheapest.trained[0]}, {cheapest.label})"
            )
        return _merged(chosen.values())


def subset_costs(module: ModuleOp, candidates: set[str], function: str,
                 add_step: Callable[[ModuleOp], None]) -> SubsetCosts:
    """The costs of training any subset of `candidates` (see
    `edge_opt.ir.subset_costs`), from one training step, added to a copy of `module` by
    `add_step` (`add_train_step` with the pass's options), in which all of them train, each restrictable one at all but its last output channel."""
    probe = module.clone()
    forward = find_function(probe, function)
    for param in model_params(probe):
        name = param.sym_name.data
        set_trainable(param, name in candidates)
        out = output_channels(forward, param) if name in candidates else None
        set_restriction(param, tuple(range(out - 1)) if out is not None and out > 1 else None)
    add_step(probe)
    return SubsetCosts(probe)


def _cost(costs: SubsetCosts, trained: set[str],
          restrictions: Restrictions) -> tuple[int, int]:
    """A layer's parameters that get no gradient (batch-norm running statistics marked
    trainable) cost nothing: the step leaves them as they are."""
    return costs.costs(trained & costs.trained(), restrictions)


def _merged(options) -> tuple[set[str], Restrictions]:
    """The parameters and restrictions of a set of options (one per layer)."""
    trained: set[str] = set()
    restrictions: Restrictions = {}
    for o in options:
        trained.update(o.trained)
        restrictions.update(o.restrictions())
    return trained, restrictions


def _restrictable(
    forward: func.FuncOp, params: dict[str, nn.ParamOp], trained: tuple[str, ...]
) -> int | None:
    """The layer's output-channel count if every trained parameter of it can be updated
    by channel and they share that count, else None."""
    counts = {output_channels(forward, params[n]) for n in trained}
    if len(counts) != 1 or None in counts:
        return None
    return counts.pop()


def _classes(step) -> int:
    """Number of classes of a cross-entropy training step (its logits' last dim)."""
    for op in step.body.block.ops:
        if isinstance(op, train.CrossEntropyOp):
            assert isinstance(op.logits.type, TensorType)
            return op.logits.type.get_shape()[-1]
    return 2


def format_selection(scores: list[Option], budget_kib: float) -> str:
    lines = [
        (
            f"sparse-update: budget {budget_kib:g} KiB of backward memory; layers by "
            "score (importance per relative memory + compute cost):"
        ),
        (
            f"  {'layer (its first parameter)':<40} {'trains':>9} {'params':>8} "
            f"{'fisher':>10} {'mem KiB':>9} {'bwd MFLOP':>10} {'score':>7}  decision"
        ),
    ]
    for s in sorted(scores, key=lambda s: -s.score):
        lines.append(
            f"  {s.layer.params[0][:40]:<40} {s.label:>9} {s.params:>8} "
            f"{s.fisher:>10.3g} {s.memory / 1024:>9.2f} {s.flops / 1e6:>10.3f} "
            f"{s.score:>7.3f}  {s.reason}"
        )
    return "\n".join(lines) + "\n"
