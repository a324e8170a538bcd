"""Regenerates the bundled example models' weights and inputs (deterministic).

    python examples/make_examples.py

`tiny_cnn.mlir` is written by hand; this script writes `tiny_cnn.npz` (its parameters,
Kaiming-style random init with a fixed seed) and `tiny_cnn_input.npz` (a batch of inputs
and labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_opt.ir.model_io import parse_module, write_npz
from edge_opt.ir.session import params_of

HERE = Path(__file__).resolve().parent


def init_params(mlir: Path, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = params_of(parse_module(mlir.read_text(), str(mlir)))
    values = {}
    for name, op in params.items():
        if op.value is not None:
            continue
        shape = tuple(op.type.get_shape())
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        if name.endswith("var"):
            values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) == 1:
            values[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            values[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(
                np.float32
            )
    return values


def main() -> None:
    mlir = HERE / "tiny_cnn.mlir"
    write_npz(mlir.with_suffix(".npz"), init_params(mlir, seed=0))
    rng = np.random.default_rng(1)
    write_npz(
        HERE / "tiny_cnn_input.npz",
        {
            "image": rng.standard_normal((4, 1, 12, 12)).astype(np.float32),
            "labels": rng.integers(0, 10, size=(4,)).astype(np.int32),
        },
    )


if __name__ == "__main__":
    main()
