"""Memory of full fine-tuning of the biosignal models, beside BioTrain's figures.

    python bench/biotrain_memory.py [--model eeg eog]

For the EEG and EOG models of `examples/biosignal` (imported from their ONNX files),
the planned L2 of the training step on GAP9 (`lower-to-buffers{soc=gap9 weights=L2
tiling=off}` on `@train_step` alone: without L1 tiling, as at batch 8 a training-mode
batch norm's per-channel planes of the whole batch exceed GAP9's L1; docs/biosignal.md),
for full fine-tuning at

- batch 1 and batch 8 with batch statistics (`train-full{bn=batch-update}`),
- batch 8 as 8 micro-batches of 1 (`train-full{bn=frozen accumulate=8}`; accumulation
  needs frozen statistics),

each as built and after `recompute,reorder-for-memory`. Prints the arena peak, its
lower bound and the whole L2 (arena + parameters + optimizer state + constants), in
bytes, and the ratio of batch 8 to batch 8 by accumulation. BioTrain (GAP9, EEG):
5.4 MB for a conventional step (batch norm, batch 8) against 0.67 MB (8.1x).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_opt.testing import apply_passes

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "biosignal"
sys.path.insert(0, str(EXAMPLE))

import calibrate  # the demo's import and L2 plan

SETUPS = (
    ("batch 1", 1, "train-full{bn=batch-update}"),
    ("batch 8", 8, "train-full{bn=batch-update}"),
    ("batch 8 = 8 x 1 (accumulate)", 8, "train-full{bn=frozen accumulate=8}"),
)
MEMORY_PASSES = ",recompute,reorder-for-memory"


def figures(model: str, batch: int, pipeline: str) -> dict[str, int]:
    module = apply_passes(pipeline, calibrate.load(model, batch))
    l2 = calibrate.l2_plan(module)
    return {"peak": l2["peak_bytes"], "bound": l2["lower_bound_bytes"],
            "total": l2["peak_bytes"] + l2["persistent_bytes"] + l2["constants_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", choices=["eeg", "eog"], default=["eeg", "eog"])
    args = parser.parse_args()
    for model in args.model:
        print(f"{model}: planned L2 of the full fine-tuning step on GAP9 (bytes)")
        print(f"  {'setup':30} {'passes':28} {'arena':>10} {'bound':>10} {'L2 total':>10}")
        totals = {}
        for label, batch, pipeline in SETUPS:
            for passes in ("", MEMORY_PASSES):
                f = figures(model, batch, pipeline + passes)
                totals[label, passes] = f["total"]
                shown = passes.lstrip(",") or "-"
                print(f"  {label:30} {shown:28} {f['peak']:>10,} {f['bound']:>10,} "
                      f"{f['total']:>10,}")
        for passes in ("", MEMORY_PASSES):
            ratio = totals["batch 8", passes] / totals["batch 8 = 8 x 1 (accumulate)", passes]
            print(f"  batch 8 / accumulate, L2 total{passes and ' (' + passes.lstrip(',') + ')'}:"
                  f" {ratio:.1f}x")
    print("BioTrain (GAP9, EEG): 5.4 MB (batch norm, batch 8) -> 0.67 MB, 8.1x")


if __name__ == "__main__":
    main()
