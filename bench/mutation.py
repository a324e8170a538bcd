"""Mutation testing of edge-opt's own passes with `edge-opt fuzz` (issue 14).

Each mutant is a plausible bug planted by one text edit (file, find, replace) in a
copy of the package: an off-by-one, swapped operands, a dropped bias, a gradient with
the wrong sign, a missing 1/k, an ignored dependency... For each, `edge-opt fuzz` runs
at its default budget (500 examples, seed 0) against the pass or pipeline the mutant
touches, in a subprocess that imports the mutated copy; the mutant is *caught* when the
command exits with status 1 (a wrong result, or a crash, found on a random model). The
real files are never modified.

    python bench/mutation.py                 # every mutant (~10-20 min on 2 cores)
    python bench/mutation.py --only grad-sub-sign fbn-mean
    python bench/mutation.py --list

How the copy is imported: the package directories (support, dialects, ...) are copied
to `TMP/edge_opt/<dir>`, and the fuzz command runs as `python -m
edge_opt.tools.driver fuzz ...` with `PYTHONPATH=TMP`: the path entry comes before the
editable install's finder (which `sys.meta_path` consults last), so `edge_opt.*`
resolves to the copy. Each mutant gets its own fresh copy.

Before the mutants, every distinct fuzz command runs once on an unmutated copy and
must pass: otherwise a "caught" would mean nothing.

Each row: the mutant, the command (pass or pipeline), caught or not, the examples it
took (`FAILED after N examples`), and the ops of the reproducer's `@forward`.

reorder-no-effect-edges changes memory, not numbers: the reorder may put an
optimizer's in-place update of `@p` before another read of `@p`, and `bufferize` then
writes the update to a new buffer and copies it at the store (the arena grows: 208
instead of 176 bytes on `linear -> tanh -> linear`, while the pass records a lower
peak). The fuzz campaign's memory-claims check (`edge_opt.testing.memory_claims`)
catches it.

recompute-non-cheap changes cost, not numbers: copies of expensive ops compute the
same values. `recompute`'s own promise (`check_result`: without `expensive=true` it adds
copies of cheap ops only) catches it when a model lets an expensive copy lower the peak
within the 5 % FLOP budget: after 230 examples at seed 0, past the default budget.

The mutant no oracle of `edge-opt fuzz` can catch:

- plan-overlap-strict: a buffer's lifetime runs from its `kernel.alloc` to its last
  use, and no alloc uses another buffer, so one buffer's end never equals another's
  start: `<` and `<=` decide alike on every plan `plan-memory` asks for (an
  equivalent mutant for every pipeline; `tests/test_memory_plan.py`, whose random
  lifetimes do touch, catches it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from xdsl.dialects import func

from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import get_function

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("support", "dialects", "ir", "passes", "autodiff", "frontends", "backends",
            "testing", "tools")
RULES = str(ROOT / "tests" / "filecheck" / "inputs" / "rules" / "identities.rules")
GRADIENTS = ("--gradients",)
TRAIN = ("--train",)


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    """Relative to the repository root."""
    find: str
    replace: str
    fuzz: tuple[str, ...]
    """The arguments of `edge-opt fuzz`."""
    bug: str


def _m(name: str, file: str, find: str, replace: str, fuzz: tuple[str, ...] | str,
       bug: str) -> Mutant:
    return Mutant(name, file, find, replace, (fuzz,) if isinstance(fuzz, str) else fuzz,
                  bug)


PBA = "passes/pool_before_activation.py"
FBN = "passes/fold_batch_norm.py"
ELEM = "autodiff/rules/elementwise.py"
LINALG = "autodiff/rules/linalg.py"
POOLS = "autodiff/rules/pools.py"
STEP = "autodiff/train_step.py"
ATTN = "ir/attention.py"
FBN_OPS = ("fold-batch-norm", "--ops", "conv2d,linear,batch_norm", "--trainable", "none")
PBA_OPS = ("pool-before-activation", "--ops",
           "relu,leaky_relu,clip,silu,max_pool2d,avg_pool2d")
"""As docs/plugins-and-fuzzing.md advises for a rewrite of two ops in a row, which the
focus probe (one op kind at a time) does not find: the ops the pass is about (the
activations it moves, the max-pool) and their near misses (silu, which is not
monotonic; the average pool)."""
FUSE = ("fuse-attention-weights", "--trainable", "none")
"""It fuses frozen projections only."""
ACCUMULATE = ("--gradients", "train-full{loss=mse accumulate=2}", "--ops", "linear,tanh")
"""As docs/plugins-and-fuzzing.md shows: over all ops most models are refused
(a batch of 1, or ops that couple the samples of a batch)."""

EXACT = ("--gradients",
         "train-full{loss=mse bn=batch-update accumulate=2 bn-accumulate=exact}",
         "--ops", "batch_norm,conv2d", "--batch", "2,4")
"""Exact batch statistics over micro-batches: batches of 2 and 4 (most random models
have batch 1 or 2, which accumulate=2 refuses or splits into single samples)."""


def _grad(ops: str) -> tuple[str, ...]:
    return (*GRADIENTS, "--ops", ops)


MUTANTS: tuple[Mutant, ...] = (
    # --- pool-before-activation ---------------------------------------------------
    _m("pba-leaky-negative", PBA,
       "return alpha is None or alpha.value.data >= 0  # type: ignore[union-attr]",
       "return True", PBA_OPS,
       "moves a leaky relu with a negative slope (it decreases) after the max-pool"),
    _m("pba-avg-pool", PBA,
       "def match_and_rewrite(self, op: nn.MaxPool2dOp, rewriter",
       "def match_and_rewrite(self, op: nn.AvgPool2dOp, rewriter",
       PBA_OPS, "swaps an activation with an average pool"),
    _m("pba-silu", PBA, "if isinstance(op, _RELU | _CLIP):",
       'if isinstance(op, _RELU | _CLIP | NN_OP["silu"]):', PBA_OPS,
       "treats silu (not monotonic) as non-decreasing"),
    _m("pba-other-users", PBA,
       "if not activation.results[0].has_one_use():\n            return",
       "if False:\n            return", PBA_OPS,
       "moves an activation that has other users"),
    # --- fold-batch-norm ----------------------------------------------------------
    _m("fbn-mean", FBN, "return weight, (b.astype(np.float64) - mean) * s + bias",
       "return weight, b.astype(np.float64) * s + bias", FBN_OPS,
       "forgets the running mean in the folded bias"),
    _m("fbn-eps", FBN, "np.sqrt(var.astype(np.float64) + eps)",
       "np.sqrt(var.astype(np.float64))", FBN_OPS, "forgets epsilon"),
    _m("fbn-training-mode", FBN,
       "if op.training is not None or not isinstance(layer, nn.Conv2dOp | nn.LinearOp):",
       "if not isinstance(layer, nn.Conv2dOp | nn.LinearOp):", FBN_OPS,
       "folds a batch norm in training mode (batch statistics)"),
    _m("fbn-weight-axis", FBN,
       "weight = w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))",
       "weight = w.astype(np.float64) * s.reshape((1, -1) + (1,) * (w.ndim - 2))",
       FBN_OPS, "scales the weight's input channels instead of its output channels"),
    # --- gradient rules -------------------------------------------------------------
    _m("grad-sub-sign", ELEM,
       "b.reduce_to(b.emit(nn.NegOp(dy)), shape_of(op.rhs))",
       "b.reduce_to(dy, shape_of(op.rhs))", _grad("sub,linear,tanh"),
       "sub: the gradient of the right operand without its minus sign"),
    _m("grad-mul-operand", ELEM,
       "b.reduce_to(b.emit(nn.MulOp(dy, op.rhs)), shape_of(op.lhs))",
       "b.reduce_to(b.emit(nn.MulOp(dy, op.lhs)), shape_of(op.lhs))",
       _grad("mul,linear,tanh"), "mul: the left gradient multiplies by the wrong operand"),
    _m("grad-div-sign", ELEM,
       "d_rhs = b.reduce_to(b.emit(nn.NegOp(ratio)), shape_of(op.rhs))",
       "d_rhs = b.reduce_to(ratio, shape_of(op.rhs))", _grad("div,linear,tanh"),
       "div: the divisor's gradient without its minus sign"),
    _m("grad-sqrt-constant", ELEM, "b.scale(dy, 0.5)", "b.scale(dy, 2.0)",
       _grad("sqrt,linear"), "sqrt: 2 instead of 1/2"),
    _m("grad-log", ELEM, "return [b.emit(nn.DivOp(dy, op.input))]",
       "return [b.emit(nn.MulOp(dy, op.input))]", _grad("log,linear"),
       "log: multiplies by x instead of dividing"),
    _m("grad-pow-exponent", ELEM,
       "exponent = b.emit(nn.SubOp(op.rhs, b.constant(1.0, op.rhs)))",
       "exponent = b.emit(nn.SubOp(op.rhs, b.constant(2.0, op.rhs)))",
       _grad("pow,linear"), "pow: x^(p-2) instead of x^(p-1)"),
    _m("grad-exp", ELEM, "return [b.emit(nn.MulOp(dy, op.result))]",
       "return [b.emit(nn.MulOp(dy, op.input))]", _grad("exp,linear"),
       "exp: multiplies by x instead of exp(x)"),
    _m("grad-neg", ELEM, "return [b.emit(nn.NegOp(dy))]", "return [dy]",
       _grad("neg,linear"), "neg: the gradient passes unchanged"),
    _m("grad-linear-bias-axes", LINALG, "leading = tuple(range(out))",
       "leading = tuple(range(1, out))", _grad("linear,tanh"),
       "linear: the bias gradient sums over one axis too few (off by one)"),
    _m("grad-matmul-transpose", LINALG,
       "full = nn.MatmulOp(dy, op.rhs, transpose_rhs=not tb)",
       "full = nn.MatmulOp(dy, op.rhs, transpose_rhs=tb)", _grad("matmul,tanh"),
       "matmul: the left gradient forgets to transpose the right operand"),
    _m("grad-conv-bias-axes", LINALG,
       "b.sum_over(b.channels_of(dy, op.bias, 1), (0, 2, 3))",
       "b.sum_over(b.channels_of(dy, op.bias, 1), (0, 2))", _grad("conv2d,tanh"),
       "conv: the bias gradient forgets the width axis"),
    _m("grad-avg-pool-padding", POOLS,
       "count_include_pad=op.count_include_pad is not None",
       "count_include_pad=op.count_include_pad is None", _grad("avg_pool2d,conv2d"),
       "avg pool: the gradient counts padding the other way"),
    _m("grad-global-avg-pool", POOLS, "1.0 / math.prod(shape[2:])",
       "1.0 / math.prod(shape[3:])", _grad("global_avg_pool,conv2d"),
       "global avg pool: divides by the width only (a slice off by one)"),
    # --- training step ----------------------------------------------------------------
    _m("accumulate-gradient-1/k", STEP,
       "seed = self.grads.scale(seed, 1.0 / self.accumulate)",
       "seed = self.grads.scale(seed, 1.0)", ACCUMULATE,
       "accumulate=k: the micro-batch gradients are summed, not averaged"),
    _m("accumulate-loss-1/k", STEP, "total = self.grads.scale(total, 1.0 / len(losses))",
       "total = self.grads.scale(total, 1.0)", ACCUMULATE,
       "accumulate=k: the loss is the sum of the micro-batch losses"),
    _m("bn-momentum-swapped", "autodiff/batch_norm_modes.py",
       "kept = b.scale(running, 1.0 - momentum)\n"
       "        new = b.emit(nn.AddOp(kept, b.scale(batch, momentum)))",
       "kept = b.scale(running, momentum)\n"
       "        new = b.emit(nn.AddOp(kept, b.scale(batch, 1.0 - momentum)))",
       ("--gradients", "train-full{loss=mse bn=batch-update}", "--ops",
        "batch_norm,conv2d"),
       "bn=batch-update: the momentum weighs the running statistics, not the batch"),
    _m("bn-exact-no-spread", "autodiff/batch_statistics.py",
       "m2 = b.emit(nn.AddOp(b.emit(nn.AddOp(m2, part_m2)), spread))",
       "m2 = b.emit(nn.AddOp(m2, part_m2))", EXACT,
       "bn-accumulate=exact: the merged variance forgets the spread between the "
       "micro-batches' means"),
    _m("bn-exact-shift-per-micro-batch", "autodiff/batch_statistics.py",
       "layer.shift = b.emit(nn.ReshapeOp(b.scale(total[0], 1.0 / layer.count), keep))",
       "layer.shift = b.emit(nn.ReshapeOp(b.scale(total[0], self.step.accumulate / "
       "layer.count), keep))", EXACT,
       "bn-accumulate=exact: the gradient's mean term is a micro-batch's, not the "
       "batch's"),
    # --- reorder-for-memory, recompute --------------------------------------------------
    _m("reorder-no-effect-edges", "ir/op_graph.py", "for u in readers.get(name, ()):",
       "for u in ():", ("reorder-for-memory", *TRAIN),
       "reorder-for-memory ignores the order of parameter reads and writes"),
    _m("recompute-last-use", "passes/recompute.py",
       "first = candidate.backward_uses[0]", "first = candidate.backward_uses[-1]",
       ("recompute", *TRAIN), "recompute places the copy before the last backward use"),
    _m("recompute-forward-uses", "passes/recompute.py",
       "op.results[0].replace_uses_with_if(copy.results[0], lambda use: use.operation "
       "in users)", "op.results[0].replace_all_uses_with(copy.results[0])",
       ("recompute", *TRAIN), "recompute redirects the forward uses to the copy too"),
    _m("recompute-non-cheap", "passes/recompute.py",
       "if kinds is not None and not isinstance(op, kinds) or len(op.results) != 1:",
       "if len(op.results) != 1:", ("recompute", *TRAIN),
       "recompute copies expensive ops (convolutions, matmuls) too"),
    # --- memory planning (the buffer level, interpreted in byte arenas) -------------------
    _m("plan-overlap-strict", "support/memory_plan.py",
       "return self.start <= other.end and other.start <= self.end",
       "return self.start < other.end and other.start < self.end",
       ("lower-to-buffers", *TRAIN),
       "a buffer born where another dies may share its bytes (wrong in-place condition)"),
    _m("plan-gap-too-small", "support/memory_plan.py",
       "if gap >= buffer.size and gap < best_gap:",
       "if gap >= buffer.size // 2 and gap < best_gap:", ("lower-to-buffers", *TRAIN),
       "the planner fits a buffer into a gap half its size"),
    _m("liveness-ignores-views", "ir/liveness.py",
       "end = max(index[op], *(_last_use(v, index) for v in _aliases(op.result)))",
       "end = max(index[op], _last_use(op.result, index))", ("lower-to-buffers", *TRAIN),
       "liveness ignores the uses of views of a buffer"),
    # --- attention lowering and fusion ---------------------------------------------------
    _m("lower-attention-softmax-axis", ATTN,
       'probabilities = emit(nn.SoftmaxOp(scaled, -1), "probs")',
       'probabilities = emit(nn.SoftmaxOp(scaled, -2), "probs")', "lower-attention",
       "softmax over the query axis instead of the key axis"),
    _m("blocked-attention-scale", ATTN,
       "factor = factor or scale_constant(emit, scale, scores)",
       "factor = factor or scale_constant(emit, 1.0, scores)",
       "tile-attention-depth-first{rows=1},lower-attention",
       "depth-first attention forgets the scale"),
    _m("blocked-attention-heads", ATTN,
       "zip(range(heads), k_heads, v_heads)", "zip(range(heads), k_heads, v_heads[::-1])",
       "tile-attention-depth-first{rows=1},lower-attention",
       "depth-first attention pairs each head with another head's values"),
    _m("query-blocks-off-by-one", ATTN,
       "(start, min(start + rows, tokens)) for start in range(0, tokens, rows)",
       "(start, min(start + rows, tokens - 1)) for start in range(0, tokens, rows)",
       "tile-attention-depth-first{rows=2},lower-attention",
       "the last query block stops one row short"),
    _m("fused-vo-bias", "passes/fuse_attention_weights.py",
       "return n, bo.astype(np.float64) + bv.astype(np.float64) @ wo.astype(np.float64)",
       "return n, bo.astype(np.float64)", FUSE,
       "the fused output bias drops the value bias"),
    _m("fused-qk-operands", "passes/fuse_attention_weights.py",
       "m = scale * (q @ k.transpose(0, 2, 1))", "m = scale * (k @ q.transpose(0, 2, 1))",
       FUSE, "Wq Wk^T with its operands swapped (the transpose)"),
    # --- rewrite rules -------------------------------------------------------------------
    _m("rules-any-constant", "passes/rules.py",
       "return array is not None and bool(np.all(array == np.asarray(number, "
       "array.dtype)))", "return array is not None",
       (f"rules{{file={RULES}}}", "--ops", "mul,constant,relu,neg"),
       "a number in a pattern matches any constant"),
)


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def copy_package(into: Path) -> Path:
    """The package directories under `into/edge_opt/`; returns `into` (for
    PYTHONPATH)."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, into / "edge_opt" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return into


def apply(mutant: Mutant, root: Path) -> None:
    path = root / "edge_opt" / mutant.file
    text = path.read_text()
    count = text.count(mutant.find)
    if count != 1:
        raise ValueError(f"{mutant.name}: the text to replace occurs {count} times in "
                         f"{mutant.file}, expected once")
    path.write_text(text.replace(mutant.find, mutant.replace))


@dataclass
class Outcome:
    status: int
    output: str
    seconds: float
    examples: int | None
    ops: list[str]


def run_fuzz(pythonpath: Path, fuzz: tuple[str, ...], out: Path) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edge_opt.tools.driver", "fuzz", *fuzz, "--out", str(out)],
        env=env, capture_output=True, text=True, check=False, cwd=pythonpath)
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    found = re.search(r"FAILED after (\d+) example", output)
    ops: list[str] = []
    if (out / "repro.mlir").exists():
        body = get_function(load_model(out / "repro.mlir"), "forward").body.block
        ops = [op.name for op in body.ops if not isinstance(op, func.ReturnOp)]
    return Outcome(done.returncode, output, seconds,
                   int(found.group(1)) if found else None, ops)


def _baselines(commands: set[tuple[str, ...]], scratch: Path) -> dict[tuple[str, ...], Outcome]:
    clean = copy_package(scratch / "clean")
    results = {}
    for i, fuzz in enumerate(sorted(commands)):
        results[fuzz] = outcome = run_fuzz(clean, fuzz, scratch / f"baseline-{i}")
        state = "passes" if outcome.status == 0 else f"FAILS (status {outcome.status})"
        print(f"baseline {' '.join(fuzz)}: {state} in {outcome.seconds:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the runs on the unmutated copy")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:30} {m.file:34} {m.bug}")
        return 0
    print(f"{len(mutants)} mutants in {len({m.file for m in mutants})} files")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-opt-mutation-") as scratch_dir:
        scratch = Path(scratch_dir)
        baselines = {} if args.no_baseline else _baselines({m.fuzz for m in mutants}, scratch)
        for i, mutant in enumerate(mutants):
            root = copy_package(scratch / f"m{i}")
            apply(mutant, root)
            outcome = run_fuzz(root, mutant.fuzz, scratch / f"m{i}-repro")
            shutil.rmtree(root)
            base = baselines.get(mutant.fuzz)
            rows.append((mutant, outcome, base))
            print(_row(mutant, outcome, base), flush=True)
    _summary(rows)
    return 0


def _verdict(outcome: Outcome, base: Outcome | None) -> str:
    if base is not None and base.status != 0:
        return "baseline fails"
    if outcome.status == 1:
        return "caught"
    if outcome.status == 0:
        return "SURVIVED"
    return f"error (status {outcome.status})"


def _row(mutant: Mutant, outcome: Outcome, base: Outcome | None) -> str:
    examples = "" if outcome.examples is None else str(outcome.examples)
    ops = ", ".join(op.removeprefix("nn.") for op in outcome.ops)
    return (f"| {mutant.name} | `{' '.join(mutant.fuzz)}` | {_verdict(outcome, base)} | "
            f"{examples} | {outcome.seconds:.0f} s | {ops} |")


def _summary(rows: list[tuple[Mutant, Outcome, Outcome | None]]) -> None:
    print("\n| mutant | edge-opt fuzz ... | caught? | examples to catch | time | "
          "reproducer ops (@forward) |")
    print("|---|---|---|---|---|---|")
    for mutant, outcome, base in rows:
        print(_row(mutant, outcome, base))
    verdicts = [_verdict(o, b) for _, o, b in rows]
    valid = [v for v in verdicts if v in ("caught", "SURVIVED")]
    caught = verdicts.count("caught")
    print(f"\nmutation score: {caught}/{len(valid)} caught "
          f"({100 * caught / max(1, len(valid)):.0f} %)")
    for (mutant, outcome, _), verdict in zip(rows, verdicts, strict=True):
        if verdict != "caught":
            print(f"  {verdict}: {mutant.name} ({mutant.file}): {mutant.bug}")
            if verdict.startswith("error"):
                print("    " + outcome.output.strip().splitlines()[-1][:300])


if __name__ == "__main__":
    sys.exit(main())
