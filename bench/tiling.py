"""The tile and DMA levels on CCT2, measured: DMA bytes per training step, L1 and L2
arenas, compile time tiled vs untiled, and the schedule search against exhaustive.

    python bench/tiling.py [--models DIR] [--repeat 3]

Prints, exact counts unless marked as an estimate:
1. CCT2 (Deeploy's CCT_Train_CCT2 graph, batch 1, SGD lr 0.01) on GAP9 (L1 120,000 B,
   weights in L3 where L2 would overflow) for train-full, train-last (the classifier),
   train-lora (rank 2, as Deeploy's LoRA2) and FT2 (the fixture's trainable set): DMA
   bytes and transfers per training step by direction, the estimated DMA cycles, L1 and
   L2 arenas; and the ratio of train-full to train-lora DMA bytes (the published LoRA
   result on the device: 1.6x less memory transfer than full backpropagation).
2. At Deeploy's budget (Siracusa, L1 = 64,000 B, double buffering): CCT2 FT2 training
   and CCT_1_16_16_8 inference, our L1 and L2 arenas beside Deeploy's (measured on this
   machine class: FT2 L1 63,744 B, L2 127,488 B, L3 dynamic 1,973,588 B, 15.5 s to
   generate; CCT_1_16_16_8 L1 49,152 B (63,488 B double-buffered), L2 55,296 B).
3. Compile time of CCT2 FT2 to planned buffers and to C, tiled and untiled, in the same
   process (best of `--repeat`), and the ratio to Deeploy's 15.5 s.
4. Schedule search on the CCT2 layers' shapes: the annealed schedule's estimated cost
   against the exhaustive optimum.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c.compile import emit_c_project
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.dma_report import dma_figures
from edge_opt.ir.memory_report import memory_figures
from edge_opt.passes.lower_to_buffers import choose_weights
from edge_opt.passes.tile_l1 import target_of
from edge_opt.support import schedule_search
from edge_opt.support.schedule_search import Operand, Problem
from edge_opt.support.socs import get_soc
from edge_opt.testing import apply_passes

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT.parent / "shared" / "models" / "deeploy"
DEEPLOY_SECONDS = 15.5


def trained(models: Path, strategy: str) -> ModuleOp:
    folder = models / "CCT_Train_CCT2_FT2"
    module = import_onnx(folder / "network_infer.onnx")
    if strategy == "FT2":
        outputs = np.load(folder / "outputs.npz")
        regex = "|".join(re.escape(k.removesuffix("_updated")) for k in outputs.files)
        spec = (f'raise-layer-norm,freeze{{trainable="{regex}"}},autodiff{{lr=0.01}},'
                "canonicalize,cse,dce")
    else:
        spec = strategy
    return apply_passes(spec, module)


def lowered(module: ModuleOp, soc: str, extra: str = "") -> ModuleOp:
    weights, _ = choose_weights(module, soc)
    return apply_passes(f"lower-to-buffers{{soc={soc} weights={weights}{extra}}}", module)


def arenas(planned: ModuleOp) -> dict[str, int]:
    return {level: f["peak_bytes"] for level, f in memory_figures(planned).items()}


def dma_table(models: Path) -> None:
    print("1. CCT2 on GAP9 (L1 120,000 B): DMA per training step")
    strategies = {"train-full": "train-full{lr=0.01}",
                  "train-last": "train-last{layers=1 lr=0.01}",
                  "train-lora": "train-lora{rank=2 lr=0.01}",
                  "FT2": "FT2"}
    totals = {}
    soc = get_soc("gap9")
    for name, strategy in strategies.items():
        planned = lowered(trained(models, strategy), "gap9")
        step = dma_figures(planned, soc)["train_step"]
        totals[name] = step["total_bytes"]
        levels = arenas(planned)
        by_direction = ", ".join(f"{d} {v['bytes']:,} B/{v['transfers']:,}"
                                 for d, v in step["directions"].items())
        print(f"  {name:10s} {step['total_bytes']:>11,} B in {step['total_transfers']:>6,} "
              f"transfers (est. {step['estimated_cycles']:,} cycles); L1 arena "
              f"{levels.get('L1', 0):,} B, L2 arena {levels.get('L2', 0):,} B, "
              f"L3 {'yes' if 'L3' in levels and memory_figures(planned)['L3']['persistent_bytes'] else 'no'}")
        print(f"  {'':10s} {by_direction}")
    print(f"  train-full / train-lora DMA bytes: {totals['train-full'] / totals['train-lora']:.2f}x "
          "(published LoRA on the device: 1.6x less memory transfer)")


def _at_budget(name: str, module: ModuleOp, deeploy: str) -> None:
    try:
        planned = lowered(module, "siracusa", " l1-bytes=64000")
    except PassFailedException as e:
        print(f"  {name}: does not compile at this budget: {str(e).splitlines()[0]}")
        return
    a = arenas(planned)
    print(f"  {name}: L1 {a.get('L1', 0):,} B, L2 arena {a.get('L2', 0):,} B, parameters "
          f"{memory_figures(planned)['L2']['persistent_bytes']:,} B in L2 ({deeploy})")


def deeploy_budget(models: Path) -> None:
    print("\n2. At Deeploy's budget: Siracusa, L1 = 64,000 B, double buffering")
    _at_budget("CCT2 FT2 training", trained(models, "FT2"),
               "Deeploy: L1 63,744 B, L2 127,488 B, L3 dynamic 1,973,588 B")
    infer = apply_passes("infer", import_onnx(models / "CCT_FP32_CCT_1_16_16_8" / "network.onnx"))
    _at_budget("CCT_1_16_16_8 inference", infer,
               "Deeploy: L1 49,152 B (63,488 B double-buffered), L2 55,296 B")


def compile_times(models: Path, repeat: int) -> None:
    print(f"\n3. Compile time of CCT2 FT2 (best of {repeat}, same process)")
    tensor = trained(models, "FT2")
    times: dict[str, float] = {}
    for name, extra in (("untiled", " tiling=off"), ("tiled", "")):
        best = best_c = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            planned = apply_passes(f"lower-to-buffers{{soc=gap9 weights=L3{extra}}}", tensor)
            middle = time.perf_counter()
            with tempfile.TemporaryDirectory() as directory:
                emit_c_project(planned, Path(directory) / "p", steps=1)
            end = time.perf_counter()
            best, best_c = min(best, middle - start), min(best_c, end - start)
        times[name] = best_c
        print(f"  {name:8s} to planned buffers {best:6.2f} s; to a C project (with the "
              f"interpreter's reference step) {best_c:6.2f} s")
    print(f"  tiled / untiled: {times['tiled'] / times['untiled']:.2f}x; Deeploy "
          f"({DEEPLOY_SECONDS} s) / tiled: {DEEPLOY_SECONDS / times['tiled']:.1f}x")


def search_quality() -> None:
    print("\n4. Schedule search: annealing vs exhaustive on CCT2's layer shapes (GAP9)")
    target = target_of(get_soc("gap9"), 0, True, 16)
    small = target_of(get_soc("gap9"), 16384, True, 16)
    layers = {
        "linear 64x128->128": (64, 128, 128),
        "linear 64x128->10": (64, 10, 128),
        "per-head 64x64x64": (64, 64, 64),
    }
    for name, (r, o, i) in layers.items():
        ops = (Operand((r, i), (0, 2), 4, False), Operand((o, i), (1, 2), 4, False),
               Operand((r, o), (0, 1), 4, True))
        problem = Problem((r, o, i), (True, True, True), ops, 2 * r * o * i)
        for label, t in (("120,000 B", target), ("16,384 B", small)):
            best = schedule_search.exhaustive(problem, t)
            annealed = schedule_search.anneal(problem, t)
            print(f"  {name:20s} L1 {label:9s}: exhaustive {best.cost.cycles:10,.0f} "
                  f"({best.evaluated:,} schedules), annealing {annealed.cost.cycles:10,.0f}: "
                  f"{annealed.cost.cycles / best.cost.cycles:.3f}x")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    dma_table(args.models)
    deeploy_budget(args.models)
    compile_times(args.models, args.repeat)
    search_quality()


if __name__ == "__main__":
    main(sys.argv[1:])
