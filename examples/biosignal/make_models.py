"""Builds, pre-trains and exports the biosignal example models (needs PyTorch).

    python examples/biosignal/make_models.py

Writes `eeg.onnx` and `eog.onnx` next to this script (committed, so edge-opt and its
tests need no PyTorch to use them). Each model is pre-trained briefly on synthetic
recordings of the source subjects (`synthetic.py`), with batch norm in train mode, then
exported with `torch.onnx.export(..., dynamo=False, opset_version=17)` with a symbolic
batch dimension (import with `--input-shape input=N,...`). The script prints the
accuracy on held-out trials of the source subjects and of the new subject of the
calibration demo (not adapted). Deterministic for a given PyTorch version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synthetic  # the example's own module, beside this script


class EegNet(nn.Module):
    """EEGNet-8,2 (Lawhern et al. 2018) with a 1x32 temporal kernel (128 Hz input):
    temporal conv -> BN -> depthwise spatial conv (22x1, depth multiplier D) -> BN ->
    ELU -> avg pool 1x4 -> separable conv (depthwise 1x16, pointwise 1x1) -> BN -> ELU
    -> avg pool 1x8 -> linear. Input (N, 1, 22, 256)."""

    def __init__(self, f1: int = 8, depth: int = 2, f2: int = 16, kernel: int = 32,
                 electrodes: int = synthetic.EEG_ELECTRODES,
                 samples: int = synthetic.EEG_SAMPLES,
                 classes: int = synthetic.EEG_CLASSES):
        super().__init__()
        self.temporal = nn.Conv2d(1, f1, (1, kernel), padding=(0, kernel // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(f1)
        self.spatial = nn.Conv2d(f1, f1 * depth, (electrodes, 1), groups=f1, bias=False)
        self.bn2 = nn.BatchNorm2d(f1 * depth)
        self.pool1 = nn.AvgPool2d((1, 4))
        self.separable_depthwise = nn.Conv2d(f1 * depth, f1 * depth, (1, 16),
                                             padding=(0, 8), groups=f1 * depth, bias=False)
        self.separable_pointwise = nn.Conv2d(f1 * depth, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, 8))
        length = ((samples + 1) // 4 + 1) // 8
        self.classifier = nn.Linear(f2 * length, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.spatial(self.bn1(self.temporal(x))))
        x = self.pool1(nn.functional.elu(x))
        x = self.bn3(self.separable_pointwise(self.separable_depthwise(x)))
        x = self.pool2(nn.functional.elu(x))
        return self.classifier(x.flatten(1))


class EogNet(nn.Module):
    """Three blocks of temporal conv (1x7) -> BN -> ReLU -> max pool 1x4, global
    average pool, linear. Input (N, 2, 1, 512): the two EOG channels as channels."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 16),
                 channels: int = synthetic.EOG_CHANNELS,
                 classes: int = synthetic.EOG_CLASSES):
        super().__init__()
        blocks: list[nn.Module] = []
        for width in widths:
            blocks += [nn.Conv2d(channels, width, (1, 7), padding=(0, 3), bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d((1, 4))]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


MODELS = {
    "eeg": (EegNet, synthetic.eeg_subject, synthetic.eeg_batch),
    "eog": (EogNet, synthetic.eog_subject, synthetic.eog_batch),
}


def source_data(name: str, trials: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`trials` trials of each source subject, concatenated."""
    _, subject, batch = MODELS[name]
    rng = np.random.default_rng(seed)
    parts = [batch(subject(s), trials, rng) for s in synthetic.SOURCE_SUBJECTS]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean(predicted == y))


def pretrain(name: str, epochs: int, trials: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = MODELS[name][0]()
    x, y = source_data(name, trials, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(y))
        for start in range(0, len(y), 32):
            index = order[start:start + 32]
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x[index])),
                                               torch.from_numpy(y[index]).long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"{name} epoch {epoch + 1}: loss {loss.item():.3f}")
    return model


def report(name: str, model: nn.Module) -> None:
    _, subject, batch = MODELS[name]
    rng = np.random.default_rng(1234)
    held_out = source_data(name, 50, seed=99)
    new = batch(subject(synthetic.NEW_SUBJECT, synthetic.NEW_SHIFT), 400, rng)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters; accuracy on held-out source trials "
          f"{accuracy(model, *held_out):.1%}, on the new subject {accuracy(model, *new):.1%}")


def export(model: nn.Module, name: str, shape: tuple[int, ...]) -> Path:
    model.eval()
    path = HERE / f"{name}.onnx"
    torch.onnx.export(
        model, (torch.zeros(shape),), str(path), dynamo=False, opset_version=17,
        do_constant_folding=False,  # folding would fuse each batch norm into its conv
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--trials", type=int, default=150,
                        help="training trials per source subject")
    args = parser.parse_args()
    torch.set_num_threads(2)
    shapes = {"eeg": (1, 1, synthetic.EEG_ELECTRODES, synthetic.EEG_SAMPLES),
              "eog": (1, synthetic.EOG_CHANNELS, 1, synthetic.EOG_SAMPLES)}
    for name, shape in shapes.items():
        model = pretrain(name, args.epochs, args.trials)
        report(name, model)
        print(f"wrote {export(model, name, shape)}")


if __name__ == "__main__":
    main()
