"""Which placement heuristic of the memory planner wins, measured.

    python bench/memory_plan.py [--random 300] [--seed 0] [--model DIR]

For the L2 buffers of CCT2 FT2's `@train_step` (Deeploy's training fixture, batch 1,
SGD, `raise-layer-norm,freeze{...},autodiff,canonicalize,cse,dce,bufferize`), of
tiny_cnn's `@train_step` (SGD and Adam) and of a few hundred random planner problems,
prints the peak of each greedy heuristic of `edge_opt.support.memory_plan` (`_ORDERS`) and of
the final plan (the best of them, plus the exhaustive search over orders on problems of
at most `EXHAUSTIVE_LIMIT` buffers), in bytes and as ratios to the lower bound (the
largest sum of simultaneously live bytes: no plan can do better) and to the naive size
(no reuse). Sizes are rounded up to 16 bytes, as `plan-memory` does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.liveness import allocations
from edge_opt.ir.session import get_function
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support import memory_plan
from edge_opt.support.memory_plan import Buffer, align, lower_bound, naive, plan

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "deeploy" / "CCT_Train_CCT2_FT2"
ALIGNMENT = 16


def heuristic_peaks(buffers: Sequence[Buffer]) -> dict[str, int]:
    """The peak of each greedy order alone, then of the final plan."""
    aligned = [Buffer(b.name, align(b.size, ALIGNMENT), b.start, b.end) for b in buffers]
    breadth = memory_plan._breadths(aligned)
    peaks = {
        name: memory_plan._place(
            sorted(aligned, key=lambda b, key=key: key(b, breadth)), ALIGNMENT
        )[1]
        for name, key in memory_plan._ORDERS.items()
    }
    final = plan(buffers, ALIGNMENT)
    memory_plan.check_plan(aligned, final)
    peaks["final plan"] = final.peak
    return peaks


def bounds(buffers: Sequence[Buffer]) -> tuple[int, int]:
    aligned = [Buffer(b.name, align(b.size, ALIGNMENT), b.start, b.end) for b in buffers]
    return lower_bound(aligned), naive(aligned)


def step_buffers(module, spec: str, function: str = "train_step") -> list[Buffer]:
    ctx = make_context()
    for p in expand(parse_pipeline(spec + ",lower-attention,bufferize")):
        p.apply(ctx, module)
    return [a.buffer for a in allocations(get_function(module, function)) if a.level == "L2"]


def print_problem(title: str, buffers: Sequence[Buffer]) -> None:
    start = time.perf_counter()
    peaks = heuristic_peaks(buffers)
    elapsed = time.perf_counter() - start
    bound, no_reuse = bounds(buffers)
    print(f"\n{title}: {len(buffers)} buffers, lower bound {bound:,} B, naive {no_reuse:,} B "
          f"(planned in {elapsed * 1000:.0f} ms)")
    print(f"  {'strategy':<20} {'peak B':>12} {'/ lower bound':>14} {'/ naive':>9}")
    best = min(v for k, v in peaks.items() if k != "final plan")
    for name, peak in peaks.items():
        mark = " *" if peak == best and name != "final plan" else ""
        print(f"  {name:<20} {peak:>12,} {peak / bound:>14.4f} {peak / no_reuse:>9.4f}{mark}")


def random_problem(rng: random.Random) -> list[Buffer]:
    """A schedule-like problem: buffers born along a sequence of ops, most short-lived,
    some (saved activations) living long; sizes spread over three decades."""
    count = rng.choice([rng.randint(2, memory_plan.EXHAUSTIVE_LIMIT), rng.randint(8, 60)])
    ops = max(4, int(count * rng.uniform(1.0, 2.5)))
    buffers = []
    for i in range(count):
        start = rng.randint(0, ops - 1)
        life = rng.randint(0, 3) if rng.random() < 0.7 else rng.randint(0, ops)
        size = int(10 ** rng.uniform(1, 4)) * 4
        buffers.append(Buffer(f"b{i}", size, start, min(ops, start + life)))
    return buffers


def print_random(count: int, seed: int) -> None:
    rng = random.Random(seed)
    names = [*memory_plan._ORDERS, "final plan"]
    ratios: dict[str, list[float]] = {n: [] for n in names}
    wins = dict.fromkeys(names, 0)
    alone = dict.fromkeys(names, 0)
    at_bound = dict.fromkeys(names, 0)
    searched = improved = 0
    for _ in range(count):
        buffers = random_problem(rng)
        peaks = heuristic_peaks(buffers)
        bound, _ = bounds(buffers)
        best = min(v for k, v in peaks.items() if k != "final plan")
        if len(buffers) <= memory_plan.EXHAUSTIVE_LIMIT:
            searched += 1
            improved += peaks["final plan"] < best
        winners = [k for k, v in peaks.items() if k != "final plan" and v == best]
        if len(winners) == 1:
            alone[winners[0]] += 1
        for name, peak in peaks.items():
            ratios[name].append(peak / bound)
            wins[name] += peak == best
            at_bound[name] += peak == bound
    print(f"\n{count} random problems (seed {seed}; {searched} small enough for the "
          f"exhaustive search, which beat every heuristic on {improved}):")
    print(f"  {'strategy':<20} {'best':>5} {'alone':>6} {'at bound':>9} {'mean / LB':>10} "
          f"{'p95 / LB':>9} {'worst / LB':>11}")
    for name in names:
        values = sorted(ratios[name])
        p95 = values[int(0.95 * (len(values) - 1))]
        heuristic = name != "final plan"
        print(f"  {name:<20} {wins[name] if heuristic else '':>5} "
              f"{alone[name] if heuristic else '':>6} {at_bound[name]:>9} "
              f"{statistics.fmean(values):>10.4f} {p95:>9.4f} {values[-1]:>11.4f}")
    print("  (best: no heuristic did better, ties included; alone: the only one that "
          "did best)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=300, help="random problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()

    onnx = args.model / "network_infer.onnx"
    if onnx.exists():
        from edge_opt.frontends.onnx import import_onnx

        trainable = sorted(
            k.removesuffix("_updated") for k in np.load(args.model / "outputs.npz").files
        )
        spec = (f'raise-layer-norm,freeze{{trainable="{"|".join(trainable)}"}},'
                "autodiff{lr=0.01},canonicalize,cse,dce")
        print_problem(f"CCT2 FT2 @train_step ({args.model.name})",
                      step_buffers(import_onnx(onnx), spec))
    else:
        print(f"(skipping CCT2: {onnx} not found)", file=sys.stderr)
    example = ROOT / "examples" / "tiny_cnn.mlir"
    for optimizer in ("sgd", "adam"):
        print_problem(f"tiny_cnn @train_step (train-full, {optimizer})",
                      step_buffers(model_io.load_model(example),
                                   f"train-full{{optimizer={optimizer}}}"))
    print_random(args.random, args.seed)
    print("\n* = the best greedy heuristic on that problem")


if __name__ == "__main__":
    main()
