"""The whole CCT2 training step on emulated RV32 cores: `edge-opt profile` per strategy.

    python bench/profile_cct2.py [--models DIR] [--cores 8] [--soc host] [--only NAME]

For CCT2 (Deeploy's CCT_Train_CCT2 graph, batch 1, SGD lr 0.01) under train-full, FT2
(the fixture's trainable set) and train-lora (rank 2), builds one training step of the
generated C for RV32 + CORE-V, runs it on `--cores` emulated cores, checks it against
the interpreter, and prints exact counts: the step's instructions (slowest core with its
barrier waits), its FLOPs, FLOP per instruction, the load imbalance, and the five
kernel calls that take the most instructions. An in-order single-issue core retires at
most one instruction per cycle: FLOP per instruction bounds FLOP per cycle per core
(the published TrainDeeploy figure on the device: 0.58 FLOP/cycle per core).
Takes minutes: the emulator counts every instruction in Python.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tiling import trained

from edge_opt.backends.c.profile import profile_step
from edge_opt.ir import model_io

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT.parent / "shared" / "models" / "deeploy"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--soc", default="host")
    parser.add_argument("--only", help="a strategy name")
    args = parser.parse_args(argv)
    folder = args.models / "CCT_Train_CCT2_FT2"
    inputs = model_io.read_npz(folder / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"]}
    strategies = {"train-full": "train-full{lr=0.01}", "FT2": "FT2",
                  "train-lora": "train-lora{rank=2 lr=0.01}"}
    for name, strategy in strategies.items():
        if args.only and args.only != name:
            continue
        start = time.perf_counter()
        profile = profile_step(trained(args.models, strategy), args.soc, args.cores, batch,
                               model=f"CCT2 {name}")
        seconds = time.perf_counter() - start
        print(f"CCT2 {name} on {profile.soc}, {profile.cores} cores: "
              f"{profile.step_instructions:,} instructions (slowest core with waits), "
              f"{profile.flops:,} FLOPs, {profile.flop_per_instruction:.3f} FLOP/instruction "
              "per core, "
              f"imbalance {profile.imbalance:.3f}; {profile.checked} [{seconds:.0f} s]")
        for call in sorted(profile.calls, key=lambda c: -c.slowest)[:5]:
            print(f"    {call.op:32s} -> {call.output:28.28s} {call.slowest:>12,} instructions "
                  f"{call.flop_per_instruction(profile.cores):6.3f} FLOP/instr per core")


if __name__ == "__main__":
    main(sys.argv[1:])
