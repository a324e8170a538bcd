"""New-subject calibration of the pre-trained biosignal models, strategy by strategy.

    python examples/biosignal/calibrate.py [--model eeg|eog|both] [--epochs 6]

A wearable meets a new user: the pre-trained model (`eeg.onnx` / `eog.onnx`, trained on
synthetic recordings of the source subjects by `make_models.py`) loses accuracy on the
new subject's shifted signals (`synthetic.py`: other electrode gains and offsets, other
frequencies). The device records a small labelled calibration set of the new subject and
adapts the model with one of edge-opt's training strategies; this script runs each
strategy in edge-opt's interpreter (no PyTorch) and prints, per strategy, the trainable
parameters, the accuracy on held-out trials of the new subject before and after, the
cross-entropy on the calibration set before and after, and the planned memory of the
training step on GAP9 (L2 arena peak, and the whole L2: arena, parameters, optimizer
state).

The strategies (batch 8, SGD with momentum 0.9, `--epochs` passes over the calibration
set; see `STRATEGIES` for the learning rates):
- `train-last`: the classifier only;
- `train-last bn=batch-update`: the classifier, and the running statistics of every
  batch norm follow the new subject's batches (AdaBN-like; scale and shift stay);
- `train-lora`: low-rank adapters (rank 4) on the linear layers (here the classifier);
- `train-full bn=batch-update`: every parameter, batch norm with batch statistics and
  its running statistics updated (PyTorch's train mode), batch 8 at once;
- `train-full accumulate=8`: every parameter, the batch of 8 as 8 micro-batches of 1
  (the memory of batch 1); gradient accumulation needs frozen batch-norm statistics
  (`bn=frozen`), as batch statistics would couple the samples.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.memory_report import memory_figures
from edge_opt.ir.session import Session
from edge_opt.passes.lower_to_buffers import LowerToBuffersPipeline
from edge_opt.support.socs import get_soc
from edge_opt.testing import apply_passes

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # the example's own module, beside this script

BATCH = 8
STRATEGIES = {
    "train-last": "train-last{layers=1 lr=0.01 momentum=0.9}",
    "train-last bn=batch-update":
        "train-last{layers=1 bn=batch-update lr=0.01 momentum=0.9}",
    "train-lora": "train-lora{rank=4 alpha=8.0 lr=0.003 momentum=0.9}",
    "train-full bn=batch-update": "train-full{bn=batch-update lr=0.01 momentum=0.9}",
    "train-full accumulate=8": "train-full{bn=frozen accumulate=8 lr=0.001 momentum=0.9}",
}
"""The pipeline of each strategy. Learning rates: the largest of 0.01, 0.003, 0.001
that does not diverge on the EEG and the EOG model (full training with frozen
statistics on the shifted subject needs a small one)."""
SUBJECTS = {
    "eeg": (synthetic.eeg_subject, synthetic.eeg_batch,
            (1, synthetic.EEG_ELECTRODES, synthetic.EEG_SAMPLES)),
    "eog": (synthetic.eog_subject, synthetic.eog_batch,
            (synthetic.EOG_CHANNELS, 1, synthetic.EOG_SAMPLES)),
}


@dataclass(frozen=True)
class NewSubject:
    """Trials of the new subject: a calibration set and held-out trials."""

    calibration: tuple[np.ndarray, np.ndarray]
    held_out: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Outcome:
    """One strategy's figures: accuracies on the held-out trials and mean cross-entropy
    on the calibration set, before and after; the planned L2 of its training step."""

    strategy: str
    trainable_params: int
    accuracy_before: float
    accuracy_after: float
    loss_before: float
    loss_after: float
    l2_peak_bytes: int
    l2_total_bytes: int


def new_subject(model: str, calibration: int = 64, held_out: int = 200,
                seed: int = 0) -> NewSubject:
    """Trials of `synthetic.NEW_SUBJECT` (counts rounded up to whole batches)."""
    subject, batch, _ = SUBJECTS[model]
    person = subject(synthetic.NEW_SUBJECT, synthetic.NEW_SHIFT)
    rng = np.random.default_rng([seed, 5])
    return NewSubject(batch(person, _whole_batches(calibration), rng),
                      batch(person, _whole_batches(held_out), rng))


def _whole_batches(count: int) -> int:
    return -(-count // BATCH) * BATCH


def load(model: str, batch: int = BATCH) -> ModuleOp:
    """The pre-trained model, imported at batch `batch`."""
    shape = (batch, *SUBJECTS[model][2])
    return import_onnx(HERE / f"{model}.onnx", input_shapes={"input": shape})


def evaluate(session: Session, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of `@forward` (running statistics) on x, y."""
    correct, loss = 0, 0.0
    for start in range(0, len(y), BATCH):
        (logits,) = session.run("forward", [x[start:start + BATCH]])
        labels = y[start:start + BATCH]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss -= float(log_softmax[np.arange(len(labels)), labels].sum())
        correct += int(np.sum(logits.argmax(axis=1) == labels))
    return correct / len(y), loss / len(y)


def adapt(model: str, strategy: str, data: NewSubject, epochs: int, seed: int = 0
          ) -> Outcome:
    """Trains the pre-trained `model` with `STRATEGIES[strategy]` for `epochs` passes
    over the calibration set (shuffled, batches of `BATCH`)."""
    module = apply_passes(STRATEGIES[strategy], load(model))
    session = Session(module)
    accuracy_before, _ = evaluate(session, *data.held_out)
    _, loss_before = evaluate(session, *data.calibration)
    x, y = data.calibration
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH):
            index = order[start:start + BATCH]
            session.run("train_step", [x[index], y[index]])
    accuracy_after, _ = evaluate(session, *data.held_out)
    _, loss_after = evaluate(session, *data.calibration)
    l2 = l2_plan(module)
    return Outcome(
        strategy, trainable_params(module), accuracy_before,
        accuracy_after, loss_before, loss_after, l2["peak_bytes"],
        l2["peak_bytes"] + l2["persistent_bytes"] + l2["constants_bytes"],
    )


def trainable_params(module: ModuleOp) -> int:
    """Values the optimizer updates (not the running statistics of batch norm, which
    `bn=batch-update` stores too)."""
    return sum(math.prod(op.type.get_shape()) for op in module.ops
               if isinstance(op, nn.ParamOp) and op.is_trainable)


def l2_plan(module: ModuleOp) -> dict[str, int]:
    """The planned L2 of the training step on GAP9 (without `@forward`, which would
    need the activations of the whole batch at once), parameters in L2. Without L1
    tiling: the tiler cuts a grouped convolution along the batch only, and one sample
    of the EEG model's spatial convolution (8x22x257 floats in) exceeds GAP9's L1; the
    L2 plan holds every tensor either way."""
    planned = module.clone()
    for function in list(planned.ops):  # the plan of the step alone
        if isinstance(function, func.FuncOp) and function.sym_name.data != "train_step":
            planned.body.block.erase_op(function)
    LowerToBuffersPipeline(soc="gap9", weights="L2", tiling="off", check=False).apply(
        Context(), planned)
    return memory_figures(planned, get_soc("gap9"))["L2"]


def table(model: str, outcomes: list[Outcome]) -> str:
    header = ("strategy", "trainable", "acc. before", "acc. after", "calib. loss",
              "L2 peak (B)", "L2 total (B)")
    rows = [header] + [
        (o.strategy, f"{o.trainable_params:,}", f"{o.accuracy_before:.1%}",
         f"{o.accuracy_after:.1%}", f"{o.loss_before:.3f} -> {o.loss_after:.3f}",
         f"{o.l2_peak_bytes:,}", f"{o.l2_total_bytes:,}")
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{model}:"]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["eeg", "eog", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--calibration", type=int, default=64,
                        help="calibration trials of the new subject")
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for model in ["eeg", "eog"] if args.model == "both" else [args.model]:
        data = new_subject(model, args.calibration, args.held_out, args.seed)
        outcomes = [adapt(model, strategy, data, args.epochs, args.seed)
                    for strategy in STRATEGIES]
        print(table(model, outcomes))


if __name__ == "__main__":
    main()
