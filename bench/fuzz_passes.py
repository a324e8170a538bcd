"""`edge-opt fuzz` on every built-in pass and named pipeline: examples per second, and
failures (issue 14).

    python bench/fuzz_passes.py                  # 200 examples each (~10 min on 2 cores)
    python bench/fuzz_passes.py --examples 20    # a quick look
    python bench/fuzz_passes.py --only recompute train-lora

The passes and pipelines are those of `edge_opt.passes.registry` (`EDGE_OPT_PASSES`,
`PIPELINES`); a name missing from `HOW` below is an error, so a new pass cannot be
left out silently. Each runs as `edge-opt fuzz` in a subprocess (some passes print
their decisions), with a wrapper where the pass needs one:

- a pass of the buffer level runs after what makes that level (`bufferize` after
  `lower-attention`; `tile-l1`/`insert-dma` within the lowering for GAP9, whose L1 is
  tiled; `plan-memory` last), and is checked against the tensor-level `@forward`;
- `rules` gets the rule file of the lit tests;
- passes that act on frozen layers only (`fold-batch-norm`, `fuse-attention-weights`)
  get frozen models (`--trainable none`);
- passes of the training step (`recompute`, `reorder-for-memory`,
  `fuse-weight-updates`) run with `--train` (train-full's plain SGD);
- `autodiff` and the training pipelines are checked with `--gradients` (the gradients
  of their step against finite differences): `@forward` itself they leave alone;
- `batch-norm-to-group-norm` changes the model on purpose (group norm for batch norm):
  the training step of the rewritten model is checked with `--gradients`;
- `merge-lora` runs after `insert-lora`, whose B factors are zero: the merge is
  exercised, its arithmetic only with zeros (noted in the table).

The table: name, the fuzz command, examples, examples/s (the campaign's own rate, as
`edge-opt fuzz` prints it: without the probe, start-up and shrinking), refused models,
the result (passes, FAILED with the first line of the failure), and the wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge_opt.passes.registry import EDGE_OPT_PASSES, PIPELINES

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "tests" / "filecheck" / "inputs" / "rules" / "identities.rules"
GAP9_TILES = "lower-attention,bufferize,tile-l1{soc=gap9},insert-dma,plan-memory{soc=gap9}"


@dataclass(frozen=True)
class How:
    fuzz: tuple[str, ...]
    note: str = ""


HOW: dict[str, How] = {
    "rules": How((f"rules{{file={RULES}}}",)),
    "autodiff": How(("--gradients", "autodiff{loss=mse}")),
    "batch-norm-to-group-norm": How(
        ("--gradients", "batch-norm-to-group-norm,train-full{loss=mse}"),
        "changes the model on purpose: the rewritten model's training step"),
    "bufferize": How(("lower-attention,bufferize",)),
    "fold-batch-norm": How(("fold-batch-norm", "--trainable", "none"),
                           "frozen models: it folds frozen layers only"),
    "freeze": How(("freeze",), "sets flags only: @forward unchanged"),
    "fuse-attention-weights": How(("fuse-attention-weights", "--trainable", "none"),
                                  "frozen models: it fuses frozen projections only"),
    "fuse-weight-updates": How(("fuse-weight-updates", "--train")),
    "insert-dma": How((GAP9_TILES,), "with tile-l1, GAP9"),
    "insert-lora": How(("insert-lora",)),
    "merge-lora": How(("insert-lora,merge-lora",), "after insert-lora: B = 0"),
    "lower-attention": How(("lower-attention",)),
    "plan-memory": How(("lower-attention,bufferize,plan-memory",)),
    "pool-before-activation": How(("pool-before-activation",)),
    "raise-attention": How(("raise-attention",)),
    "recompute": How(("recompute", "--train")),
    "reorder-for-memory": How(("reorder-for-memory", "--train")),
    "raise-layer-norm": How(("raise-layer-norm",)),
    "select-last-layers": How(("select-last-layers",)),
    "sparse-update": How(("sparse-update",)),
    "tile-attention-depth-first": How(
        ("tile-attention-depth-first{rows=1},lower-attention",)),
    "tile-l1": How((GAP9_TILES,), "with insert-dma, GAP9"),
    # Named pipelines
    "infer": How(("infer",)),
    "train-full": How(("--gradients", "train-full{loss=mse}")),
    "train-last": How(("--gradients", "train-last{loss=mse}")),
    "train-sparse": How(("--gradients", "train-sparse{loss=mse}")),
    "train-lora": How(("--gradients", "train-lora{loss=mse}")),
    "lower-to-buffers": How(("lower-to-buffers", "--train"),
                            "the training step at the buffer level"),
}


@dataclass
class Result:
    examples: int
    rate: float
    refused: int
    verdict: str
    seconds: float


def fuzz(how: How, examples: int, out: Path) -> Result:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edge_opt.tools.driver", "fuzz", *how.fuzz,
         "--examples", str(examples), "--out", str(out)],
        capture_output=True, text=True, check=False, env=os.environ.copy())
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    summary = re.search(r": (\d+) examples? in [0-9.]+ s \(([0-9.]+) examples/s\)", output)
    refused = re.search(r"refused: (\d+) models", output)
    if done.returncode == 0:
        verdict = "passes"
    elif done.returncode == 1 and "FAILED" in output:
        lines = output.split("FAILED", 1)[1].splitlines()
        verdict = "FAILED" + lines[0] + (" " + lines[1][:120] if len(lines) > 1 else "")
    else:
        verdict = f"error: {output.strip().splitlines()[-1][:160]}"
    return Result(int(summary.group(1)) if summary else 0,
                  float(summary.group(2)) if summary else 0.0,
                  int(refused.group(1)) if refused else 0, verdict, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, metavar="N")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    args = parser.parse_args(argv)
    names = [*EDGE_OPT_PASSES, *PIPELINES]
    missing = [n for n in names if n not in HOW]
    if missing:
        raise SystemExit(f"no fuzz command for {', '.join(missing)}: add it to HOW")
    print("| pass or pipeline | edge-opt fuzz ... | examples | examples/s | refused | "
          "result | wall | note |\n|---|---|---|---|---|---|---|---|", flush=True)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="edge-opt-fuzz-passes-") as scratch:
        for name in names:
            if args.only and name not in args.only:
                continue
            how = HOW[name]
            r = fuzz(how, args.examples, Path(scratch) / name)
            failures += r.verdict != "passes"
            print(f"| {name} | `{' '.join(how.fuzz)}` | {r.examples} | {r.rate:.1f} | "
                  f"{r.refused} | {r.verdict} | {r.seconds:.0f} s | {how.note} |",
                  flush=True)
    print(f"\n{failures} of the commands did not pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
