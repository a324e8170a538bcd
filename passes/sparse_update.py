"""`sparse-update`: chooses which layers train under a backward-memory budget.

After TinyTrain (Kwon et al., 2024) and sparse update (Lin et al., 2022): train the layers
that buy the most loss reduction per byte and FLOP of backward work, within the budget.

The criterion, per parametrised layer `l` (see `edge_opt.passes.layers`):

- importance `F_l`: the empirical Fisher information of its parameters on a calibration
  batch, `sum over its parameter elements of g^2`, with `g` the gradient of the mean loss
  (computed by interpreting a training step in which every candidate trains);
- cost: the backward memory `M_l` (saved activations + weight gradients + optimizer
  state, as `edge-opt report` counts it) and backward FLOPs `C_l` of training `l` alone
  (which includes backpropagating from the loss down to `l`);
- score `S_l = (F_l / sum F) / (M_l / sum M + C_l / sum C)`: importance per unit of
  relative cost.

Layers are taken in decreasing score; each is added if the selection (measured exactly, by
differentiating it) stays within `budget-kib` of backward memory, else skipped. Parameters
outside the selection are frozen. The pass prints its table (importance, costs, score and
decision per layer) to stderr.

Options: `budget-kib` (required size, KiB of backward memory), `calibration` (an `.npz`
with the forward's inputs and `labels`; default a seeded random batch), `loss` and `seed`.

Not yet: channel-level selection (updating a subset of a layer's output channels), which
saves weight-gradient bytes and FLOPs but not the saved input activation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from edge_opt.ir.report import build_report
from edge_opt.passes.autodiff import AutodiffPass, find_function
from edge_opt.passes.layers import Layer, parametrised_layers
from edge_opt.passes.options import EdgeOptPass
from edge_opt.passes.trainable import model_params, set_trainable


@dataclass
class LayerScore:
    layer: Layer
    params: int
    fisher: float
    memory: int
    flops: int
    score: float = 0.0
    selected: bool = False
    reason: str = ""


@dataclass(frozen=True)
class SparseUpdatePass(EdgeOptPass):
    """Selects the layers to train under a backward-memory budget (module docstring)."""

    name = "sparse-update"

    budget_kib: float = 64.0
    calibration: str | None = None
    loss: Literal["cross-entropy", "mse"] = "cross-entropy"
    seed: int = 0
    function: str = "forward"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.budget_kib <= 0:
            raise PassFailedException(
                f"sparse-update: budget-kib must be > 0, got {self.budget_kib}"
            )
        params = {p.sym_name.data: p for p in model_params(op)}
        candidates = {n for n, p in params.items() if p.is_trainable}
        layers = [
            layer
            for layer in parametrised_layers(find_function(op, self.function))
            if any(n in candidates for n in layer.params)
        ]
        if not layers:
            raise PassFailedException("sparse-update: no layer has a trainable parameter")
        fisher = self._fisher(op, candidates)
        scores = []
        for layer in layers:
            trained = [n for n in layer.params if n in candidates]
            memory, flops = self._cost(op, set(trained))
            f = sum(fisher.get(n, 0.0) for n in trained)
            count = sum(params[n].type.element_count() for n in trained)
            scores.append(LayerScore(layer, count, f, memory, flops))
        selection = self._select(op, candidates, scores)
        for name, param in params.items():
            set_trainable(param, name in selection)
        print(format_selection(scores, self.budget_kib), file=sys.stderr, end="")

    def _fisher(self, module: ModuleOp, trainable: set[str]) -> dict[str, float]:
        """Sum of squared gradients per parameter on the calibration batch."""
        from edge_opt.ir.session import Session

        probe = module.clone()
        for param in model_params(probe):
            set_trainable(param, param.sym_name.data in trainable)
        AutodiffPass(loss=self.loss, lr=1.0, function=self.function).apply(
            Context(), probe
        )
        session = Session(probe)
        before = {k: v.astype(np.float64) for k, v in session.params.items()}
        session.run("train_step", self._calibration_batch(probe))
        return {
            name: float(np.sum((before[name] - session.params[name]) ** 2))
            for name in trainable
        }

    def _calibration_batch(self, module: ModuleOp) -> dict[str, np.ndarray]:
        from edge_opt.ir import model_io
        from edge_opt.ir.dtypes import numpy_dtype
        from edge_opt.ir.session import get_function, input_names

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

    def _cost(self, module: ModuleOp, trained: set[str]) -> tuple[int, int]:
        """Backward memory (bytes) and backward FLOPs of training exactly `trained`."""
        probe = module.clone()
        for param in model_params(probe):
            set_trainable(param, param.sym_name.data in trained)
        AutodiffPass(loss=self.loss, function=self.function).apply(Context(), probe)
        report = build_report(probe)
        return report.backward_memory_bytes, report.flops_backward

    def _select(self, module: ModuleOp, candidates: set[str],
                scores: list[LayerScore]) -> set[str]:
        total_f = sum(s.fisher for s in scores) or 1.0
        total_m = sum(s.memory for s in scores) or 1
        total_c = sum(s.flops for s in scores) or 1
        for s in scores:
            s.score = (s.fisher / total_f) / (s.memory / total_m + s.flops / total_c)
        budget = self.budget_kib * 1024
        selection: set[str] = set()
        for s in sorted(scores, key=lambda s: -s.score):
            trained = selection | {n for n in s.layer.params if n in candidates}
            memory, _ = self._cost(module, trained)
            if memory <= budget:
                selection = trained
                s.selected = True
                s.reason = f"selected (total {memory / 1024:.1f} KiB)"
            else:
                s.reason = f"over budget (total would be {memory / 1024:.1f} KiB)"
        if not selection:
            cheapest = min(s.memory for s in scores)
            raise PassFailedException(
                f"sparse-update: budget-kib={self.budget_kib:g} is too small: the "
                f"cheapest layer alone needs {cheapest / 1024:.1f} KiB of backward memory"
            )
        return selection


def _classes(step) -> int:
    """Number of classes of a cross-entropy training step (its logits' last dim)."""
    from edge_opt.dialects import train

    for op in step.body.block.ops:
        if isinstance(op, train.CrossEntropyOp):
            assert isinstance(op.logits.type, TensorType)
            return op.logits.type.get_shape()[-1]
    return 2


def format_selection(scores: list[LayerScore], budget_kib: float) -> str:
    lines = [
        f"sparse-update: budget {budget_kib:g} KiB of backward memory; layers by score "
        "(importance per relative memory + compute cost):",
        f"  {'layer (its first parameter)':<40} {'params':>8} {'fisher':>10} {'mem KiB':>9} {'bwd MFLOP':>10} "
        f"{'score':>7}  decision",
    ]
    for s in sorted(scores, key=lambda s: -s.score):
        lines.append(
            f"  {s.layer.params[0][:40]:<40} {s.params:>8} {s.fisher:>10.3g} "
            f"{s.memory / 1024:>9.1f} {s.flops / 1e6:>10.3f} {s.score:>7.3f}  {s.reason}"
        )
    return "\n".join(lines) + "\n"
