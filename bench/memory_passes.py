"""Lowering the peak of a training step: the planned L2 arena of `@train_step` with and
without `pool-before-activation`, `recompute` and `reorder-for-memory` (each added in
turn; then `recompute{segments=true}`, which recomputes chains of forward ops), and the
FLOPs they add; last, `fuse-weight-updates` with expensive recompute segments (20 % FLOP
budget) and reordering.

1. CCT2 (Deeploy's fixture, batch 1) trained with train-full and FT2 (the fixture's
   trainable set), host plan: arena peak, its lower bound, and whether the weights plus
   the arena fit GAP9's 1.5 MiB L2; last, the fused variant's GAP9 build (`tile-l1`,
   `insert-dma`, `plan-memory{soc=gap9}`: the kernels on L1 tiles, the fused updates'
   workspaces in L1) and its L1 peak.

The EEG and EOG models' figures (batch 1, batch 8, batch 8 by accumulation, with and
without the passes, beside BioTrain's) are bench/biotrain_memory.py's.

Exact byte counts (the planner's). Run: python bench/memory_passes.py
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.memory_passes import records
from edge_opt.ir.memory_report import memory_figures
from edge_opt.testing import apply_passes

ROOT = Path(__file__).resolve().parent.parent
CCT2 = ROOT.parent / "shared" / "models" / "deeploy" / "CCT_Train_CCT2_FT2"
GAP9_L2 = 1536 * 1024


def ft2_spec() -> str:
    outputs = np.load(CCT2 / "outputs.npz")
    regex = "|".join(re.escape(k.removesuffix("_updated")) for k in outputs.files)
    return (f'raise-layer-norm,raise-attention,freeze{{trainable="{regex}"}},'
            'autodiff{lr=0.01},canonicalize,cse,dce')


REORDER = "reorder-for-memory{function=train_step}"


def variants(training: str) -> dict[str, str]:
    pooled = f"pool-before-activation,{training}"
    return {
        "the pipeline alone": training,
        "+ pool-before-activation": pooled,
        "+ recompute": f"{pooled},recompute",
        "+ reorder-for-memory": f"{pooled},recompute,{REORDER}",
        "segments, + reorder": f"{pooled},recompute{{segments=true}},{REORDER}",
        "fused, segments, reorder": (
            f"{pooled},fuse-weight-updates,"
            f"recompute{{segments=true expensive=true max-extra-flops=0.2}},{REORDER}"),
    }


def step_l2(module: ModuleOp, soc: str = "host") -> dict[str, int]:
    """The planned L2 figures of `@train_step` alone (`@forward`, which shares the
    arena, dropped: at batch 8 its inference would set the peak), planned for `soc`
    (GAP9: tiled for L1; then with the L1 peak as `l1_peak_bytes`)."""
    step = module.clone()
    for op in list(step.ops):
        if isinstance(op, func.FuncOp) and op.sym_name.data != "train_step":
            op.detach()
            op.erase()
    figures = memory_figures(apply_passes(f"lower-to-buffers{{soc={soc} check=false}}", step))
    return {**figures["L2"], "l1_peak_bytes": figures.get("L1", {}).get("peak_bytes", 0)}


def table(name: str, training: str) -> None:
    model = import_onnx(CCT2 / "network_infer.onnx")
    print(f"\n{name}")
    print(f"  {'passes':<26}{'arena peak':>12}{'lower bound':>13}{'persistent':>12}"
          f"{'L2 total':>12}{'fits 1.5 MiB':>14}{'extra FLOPs':>13}{'seconds':>9}")
    base = best = None
    runs = [(label, spec, "host") for label, spec in variants(training).items()]
    runs.append(("  the same, GAP9 build", runs[-1][1], "gap9"))
    for label, spec, soc in runs:
        start = time.perf_counter()
        module = apply_passes(spec, model)
        figures = step_l2(module, soc)
        seconds = time.perf_counter() - start
        extra = sum(r["extra_flops"] for r in records(module) or [])
        total = figures["peak_bytes"] + figures["persistent_bytes"] + figures["constants_bytes"]
        base = base or figures["peak_bytes"]
        print(f"  {label:<26}{figures['peak_bytes']:>12,}{figures['lower_bound_bytes']:>13,}"
              f"{figures['persistent_bytes']:>12,}{total:>12,}"
              f"{'yes' if total <= GAP9_L2 else 'no':>14}{extra:>13,}{seconds:>9.1f}")
        if soc == "gap9":
            print(f"  {'':<26}(L1 peak {figures['l1_peak_bytes']:,} B)")
        best = min(best or figures["peak_bytes"], figures["peak_bytes"])
    print(f"  arena: {base:,} -> {best:,} B ({base / best:.2f}x less)")


def main() -> None:
    print("1. CCT2 @train_step, planned L2 (host plan but the GAP9 build, bytes)")
    table("train-full", "train-full")
    table("FT2", ft2_spec())


if __name__ == "__main__":
    main()
