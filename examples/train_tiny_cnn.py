"""Trains the bundled tiny CNN with the interpreter and prints the loss as it falls.

    python examples/train_tiny_cnn.py [--steps 300]

The task is synthetic but learnable: each of the 10 classes is a fixed random 12x12
template, and every sample is its class's template plus noise. The model is
`tiny_cnn.mlir` (two convolutions, batch norm, pooling, a linear head), trained with
`train-full` (SGD with momentum) on a fresh batch of 4 samples per step; at the end the
script reports accuracy on held-out samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_opt.ir.context import make_context
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import Session
from edge_opt.passes.registry import expand, parse_pipeline

HERE = Path(__file__).resolve().parent
BATCH, CLASSES = 4, 10


def batches(rng: np.random.Generator, templates: np.ndarray):
    while True:
        labels = rng.integers(0, CLASSES, BATCH).astype(np.int32)
        noise = rng.standard_normal((BATCH, 1, 12, 12)).astype(np.float32)
        yield templates[labels] + 0.5 * noise, labels


def train(steps: int = 300, lr: float = 0.02, seed: int = 0, log_every: int = 25
          ) -> tuple[list[float], float]:
    """Returns the loss of every step and the held-out accuracy."""
    module = load_model(HERE / "tiny_cnn.mlir")
    for p in expand(parse_pipeline(f"train-full{{lr={lr} momentum=0.9}}")):
        p.apply(make_context(), module)
    session = Session(module)
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((CLASSES, 1, 12, 12)).astype(np.float32)
    data = batches(rng, templates)
    losses = []
    for step in range(1, steps + 1):
        images, labels = next(data)
        (loss,) = session.run("train_step", {"image": images, "labels": labels})
        losses.append(float(loss))
        if log_every and (step % log_every == 0 or step == 1):
            print(f"step {step:4d}  loss {np.mean(losses[-log_every:]):.4f}")
    correct = 0
    for _ in range(50):
        images, labels = next(data)
        (logits,) = session.run("forward", {"image": images})
        correct += int(np.sum(np.argmax(logits, axis=1) == labels))
    accuracy = correct / (50 * BATCH)
    if log_every:
        print(f"held-out accuracy {accuracy:.0%} (chance {1 / CLASSES:.0%})")
    return losses, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    train(args.steps, args.lr)


if __name__ == "__main__":
    main()
