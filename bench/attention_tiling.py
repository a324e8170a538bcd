"""Attention memory with and without depth-first tiling (`tile-attention-depth-first`).

    python bench/attention_tiling.py [--tokens 64 256] [--dim 128] [--heads 2]
                                     [--rows 32 16 8]

One multi-head self-attention layer (`edge_opt.testing.models.self_attention_layer`:
one `nn.attention`, batch 1, (D, D) projections with biases; CCT2's MHSA is 64 tokens,
dim 128, 2 heads), lowered to planned buffers (`lower-attention,bufferize,plan-memory`) for inference
(`@forward`) and for training (`autodiff{loss=mse}`, every weight trained, `@train_step`),
untiled and tiled with each `rows`. Prints, in bytes (exact counts):

- attention map: the largest sum of simultaneously live buffers that hold attention
  scores, probabilities or their gradients (the buffers the lowering and the gradient
  rule name `*scores`, `*scaled`, `*probs`, `*dprobs`, `*dscores`);
- arena: the planned peak of the whole layer's arena (activations, recomputed values,
  gradients), and its lower bound (the largest sum of simultaneously live buffers);

and the ratios of the untiled figures to the tiled ones.
"""

from __future__ import annotations

import argparse
import re

from edge_opt.ir.context import make_context
from edge_opt.ir.liveness import allocations
from edge_opt.ir.memory_report import memory_figures
from edge_opt.ir.session import get_function
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.memory_plan import lower_bound
from edge_opt.testing.models import self_attention_layer

MAP_BUFFER = re.compile(r"_(scores|scaled|probs|dprobs|dscores)$")


def attention_map_peak(module, function: str) -> int:
    """The largest sum of simultaneously live attention-map buffers of `function`."""
    return lower_bound(
        a.buffer for a in allocations(get_function(module, function))
        if MAP_BUFFER.search(a.buffer.name)
    )


def measure(tokens: int, dim: int, heads: int, rows: int | None,
            training: bool) -> tuple[int, int, int]:
    """(attention-map peak, planned arena peak, arena lower bound) in bytes."""
    module, _ = self_attention_layer(tokens, dim, heads)
    spec = "" if rows is None else f"tile-attention-depth-first{{rows={rows}}},"
    spec += "autodiff{loss=mse}," if training else ""
    ctx = make_context()
    for p in expand(parse_pipeline(spec + "lower-attention,bufferize,plan-memory")):
        p.apply(ctx, module)
    level = memory_figures(module)["L2"]
    function = "train_step" if training else "forward"
    return (attention_map_peak(module, function), level["peak_bytes"],
            level["lower_bound_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[32, 16, 8])
    args = parser.parse_args()
    header = (f"{'tokens':>6} {'step':<9} {'rows':>6} {'map B':>11} {'map ratio':>10} "
              f"{'arena B':>11} {'bound B':>11} {'arena ratio':>12}")
    print(f"MHSA layer, dim {args.dim}, {args.heads} heads, batch 1, f32")
    print(header)
    for tokens in args.tokens:
        for training in (False, True):
            step = "train" if training else "forward"
            base_map, base_arena, base_bound = measure(
                tokens, args.dim, args.heads, None, training
            )
            print(f"{tokens:>6} {step:<9} {'-':>6} {base_map:>11,} {1:>10.2f} "
                  f"{base_arena:>11,} {base_bound:>11,} {1:>12.2f}")
            for rows in args.rows:
                map_peak, arena, bound = measure(tokens, args.dim, args.heads, rows,
                                                 training)
                print(f"{tokens:>6} {step:<9} {rows:>6} {map_peak:>11,} "
                      f"{base_map / map_peak:>10.2f} {arena:>11,} {bound:>11,} "
                      f"{base_arena / arena:>12.2f}")


if __name__ == "__main__":
    main()
