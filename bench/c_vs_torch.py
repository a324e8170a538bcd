"""Host time per training step of CCT2: the generated C vs PyTorch CPU eager.

    python bench/c_vs_torch.py [--steps 20] [--model DIR]

The model is CCT2 (`CCT_Train_CCT2_FT2/network_infer.onnx`, 0.28 M parameters), batch 1,
`train-full` with SGD. The C side is the project `--emit c` writes, built with the host
gcc at -O2 and timed by its own `--time` over `--steps` steps, with 1 and 2 threads. The
PyTorch side runs the same graph op by op in eager mode (float32, `tests/torch_reference`),
then `torch.autograd.grad` and the SGD update, timed over the same number of steps after
a warm-up, with 1 thread and with the default thread count. Prints microseconds per step
and the ratio C / PyTorch (a figure to track, not a gate; it is noisy on shared machines).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "deeploy" / "CCT_Train_CCT2_FT2"
sys.path.insert(0, str(ROOT / "tests"))


def c_time_per_step(module, batch, steps: int, threads: int, directory: Path) -> float:
    from edge_opt.backends.c.compile import emit_c_project

    project = directory / "cct2"
    if not project.exists():
        emit_c_project(module, project, batch, steps=1)
        subprocess.run(["make", "-s", "-C", str(project), "network_test"], check=True)
    out = subprocess.run(
        [str(project / "network_test"), "--steps", str(steps), "--threads", str(threads),
         "--time"],
        check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("time per step"))
    return float(line.split()[3])


def torch_time_per_step(module, batch, steps: int, threads: int | None) -> float:
    import torch
    from torch_reference import TorchModel

    if threads is not None:
        torch.set_num_threads(threads)
    model = TorchModel(module, dtype=torch.float32)
    params = model.trainable_params()
    image, labels = batch["input"], batch["labels"]

    def step() -> None:
        (logits,) = model(image)
        loss = TorchModel.loss(logits, labels, "cross-entropy", "mean")
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p.sub_(0.01 * g)

    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    import torch

    from edge_opt.frontends.onnx import import_onnx
    from edge_opt.ir.context import make_context
    from edge_opt.passes.registry import expand, parse_pipeline

    module = import_onnx(args.model / "network_infer.onnx")
    for p in expand(parse_pipeline("train-full")):
        p.apply(make_context(), module)
    inputs = np.load(args.model / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"].astype(np.int32)}
    with tempfile.TemporaryDirectory() as tmp:
        c1 = c_time_per_step(module, batch, args.steps, 1, Path(tmp))
        c2 = c_time_per_step(module, batch, args.steps, 2, Path(tmp))
    default_threads = torch.get_num_threads()
    t1 = torch_time_per_step(module, batch, args.steps, 1)
    tn = torch_time_per_step(module, batch, args.steps, default_threads)
    print(f"CCT2 train-full, batch 1, SGD; {args.steps} steps (host x86, gcc -O2)")
    print(f"  C, 1 thread:              {c1:10.0f} us/step")
    print(f"  C, 2 threads:             {c2:10.0f} us/step")
    print(f"  PyTorch eager, 1 thread:  {t1:10.0f} us/step")
    print(f"  PyTorch eager, {default_threads} threads: {tn:10.0f} us/step")
    print(f"  ratio C / PyTorch (1 thread each): {c1 / t1:.2f}")
    print(f"  ratio C / PyTorch (best of each):  {min(c1, c2) / min(t1, tn):.2f}")


if __name__ == "__main__":
    main()
