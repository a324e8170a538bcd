"""Executed RV32 instructions of runtime kernels next to the peer library pulp-trainlib.

    python bench/peer_kernels.py [--only SUBSTRING] [--all-variants] [--jobs N]

For each kernel shape (fp32 GEMM, linear, 3x3 conv2d, layer norm, softmax; forward and
gradients) one run builds two kinds of programs: a call of our runtime kernel (the
`backends/c/runtime` kernel sources and `edge_platform.c`: the bare single-core
platform) and the same computation with pulp-trainlib, compiled at run time from
`ROOT/../shared/peers/pulp-trainlib` (its `lib/` sources as they are, its single-core
`pmsis.h` stub, `-DOPTIMIZE`; nothing of it lives in this repository). Both are built by
`edge_opt.backends.rv32.emulator.build_elf` with the same zig flags for the target's ISA
(RV32IMCF + CORE-V, `COREV_CPU`), loaded into unicorn and counted exactly between two
calls of a marker function, as in `bench/riscv_kernels.py`. Every output is read back
and compared with a NumPy reference: max |error| / max |reference| <= 1e-3. The inputs
are small multiples of 0.25. Cases run in parallel (`--jobs`, one per CPU by default);
the whole run emulates some 400 million instructions, about 4 minutes on two idle cores
(the 64->128 convolutions are two thirds of it); `--only conv2d` etc. runs a subset.

pulp-trainlib offers several implementations of most kernels. Each measured one is a row
of the second table; the first table shows our kernel and the peer's best correct one.
  - Matrix products: all its `mm*` variants (mm_manager's list) on 32x32x32, its fastest
    three (`FAST_MATMULS`) on the larger products, the fastest one inside its layers
    (the first and 2x4 on the small convolution); `--all-variants` runs all everywhere.
  - Linear: pulp-trainlib's layer takes one vector (and no bias in its matmul path, so
    ours runs without bias too): rows `x64 tokens` call it once per token; rows `all
    tokens` call its matmul on the 64 tokens (the grad-weight transposes dy first with
    its `transpose_matrix`, counted: its layer would overwrite dw token by token).
  - Conv2d (no bias: its im2col forward adds the bias twice, see the row `with bias`):
    im2col (CHW) + matmul. Its CHW im2col backward handles no padding (rows `pad 1
    ignored`, wrong); the correct rows run its unpadded convolution on the padded
    geometry, counted: `pad_tensor + ... on 34x34` pads x with its `pad_tensor` (the same
    MACs), `on 34x34 + crop` computes dx on 34x34 and crops it (13% more MACs at 32x32,
    27% at 16x16). Its naive kernels (padding supported, several times slower than im2col
    on these shapes) run with `--all-variants` only; its HWC im2col has no padding at all
    and is not measured.
  - Layer norm: pulp-trainlib has the forward only. Softmax: its forward uses a bit-trick
    exp, about 3% off: marked `inexact`.
Linking the peer needs double-precision soft-float and libm symbols that the measured
functions never call; they are stubs that trap (a call would abort the measurement).

Columns: instructions, FLOP per instruction (FLOPs = 2 x MACs for products and
convolutions; the cost model's per-element counts for layer norm (7 forward, 10
grad-input, 2 grad-scale) and softmax (5 forward, 4 backward); the same nominal count for
both libraries, whatever extra work one does) and peer/ours = peer instructions / ours:
> 1 means our kernel executes fewer instructions. An in-order single-issue core retires at
most one instruction per cycle, so FLOP per instruction bounds FLOP per cycle. A result
outside the tolerance is marked WRONG (`inexact` for a known approximation) and its ratio
is in parentheses: not a valid comparison; a case that does not build or run says
FAILED. `n/a`: pulp-trainlib has no such kernel.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from riscv_kernels import DRIVER, RUNTIME

from edge_opt.backends.rv32.emulator import (
    COREV_CPU,
    EmulationError,
    Program,
    build_elf,
)

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peers" / "pulp-trainlib"
PEER_SOURCES = ("matmul", "train_utils", "linear", "conv2d", "im2col", "conv_naive",
                "layernorm", "act")
TOLERANCE = 1e-3

OURS_DRIVER = DRIVER
PEER_DRIVER = """#include "pmsis.h"
#include "pulp_train_defines.h"
#include "pulp_train_utils_fp32.h"
#include "pulp_matmul_fp32.h"
#include "pulp_linear_fp32.h"
#include "pulp_conv2d_fp32.h"
#include "pulp_im2col_fp32.h"
#include "pulp_layernorm_fp32.h"
#include "pulp_act_fp32.h"
""" + OURS_DRIVER.split("\n", 1)[1]
LINK_STUBS = "#define TRAP(f) void f(void) { __builtin_trap(); }\n" + "\n".join(
    f"TRAP({name})" for name in (
        "expf", "logf", "powf", "tanhf", "erff", "cosf", "sinf", "exp", "log", "pow", "tanh",
        "__floatsidf", "__muldf3", "__divdf3", "__adddf3", "__subdf3", "__gtdf2", "__ltdf2",
        "__fixdfsi", "__extendsfdf2", "__truncdfsf2", "__extendhfsf2",
    )) + "\n"

MATMULS = (  # mm_manager's matmul_type order
    "mm", "mm_M", "mm_u2", "mm_unroll_1x2", "mm_unroll_1x4", "mm_unroll_1x8",
    "mm_unroll_2x1", "mm_unroll_4x1", "mm_unroll_8x1", "mm_unroll_2x2", "mm_unroll_2x4",
    "mm_unroll_4x2", "mm_unroll_4x4", "mm_M_u2", "mm_M_unroll_1x2", "mm_M_unroll_1x4",
    "mm_M_unroll_1x8", "mm_M_unroll_2x1", "mm_M_unroll_4x1", "mm_M_unroll_8x1",
    "mm_M_unroll_2x2", "mm_M_unroll_2x4", "mm_M_unroll_4x2", "mm_M_unroll_4x4",
)
FAST_MATMULS = ("mm_unroll_4x4", "mm_M_unroll_4x4", "mm_unroll_2x4")
"""The peer's fastest three matmuls on every GEMM shape (all of them run on 32x32x32);
by default its layers use the first, and the small convolution the first and 2x4 (which
wins when the product has 3 rows)."""


@dataclass(frozen=True)
class Case:
    kernel: str
    shape: str
    side: str
    """"ours" or "peer"."""
    variant: str
    declarations: str
    setup: str
    call: str
    flops: int
    output: str
    """The array compared with `expected` after the run."""
    expected: np.ndarray = field(compare=False, repr=False)
    cost: float = 1.0
    """Instructions per FLOP guessed, to start the slow cases first."""
    inexact: bool = False
    """A known approximation: an error above the tolerance says `inexact`, not WRONG."""


@dataclass(frozen=True)
class Result:
    case: Case
    count: int
    error: float
    failure: str = ""
    """Why the case did not build or run (then count is 0)."""

    @property
    def valid(self) -> bool:
        return not self.failure and self.error <= TOLERANCE

    @property
    def status(self) -> str:
        if self.failure:
            return f"FAILED ({self.failure})"
        if self.valid:
            return "ok"
        return f"{'inexact' if self.case.inexact else 'WRONG'} (err {self.error:.1e})"


def _values(count: int, modulus: int, offset: int = 0) -> np.ndarray:
    """(i % modulus - offset) / 4 for i < count: exact in float32."""
    return ((np.arange(count) % modulus - offset) * 0.25).astype(np.float32)


def _fill(name: str, count: int, modulus: int = 7, offset: int = 0) -> str:
    """C filling `name` with the values of `_values`."""
    return (f"  for (int i = 0; i < {count}; i++) "
            f"{name}[i] = (float)(i % {modulus} - {offset}) * 0.25f;")


def _ours(kernel: str, shape: str, declarations: str, setup: str, call: str, flops: int,
          output: str, expected: np.ndarray, cost: float = 3.0) -> Case:
    return Case(kernel, shape, "ours", "", declarations, setup, call, flops, output,
                expected.astype(np.float32).ravel(), cost)


def _peer(kernel: str, shape: str, variant: str, declarations: str, setup: str, call: str,
          flops: int, output: str, expected: np.ndarray, cost: float = 3.0,
          inexact: bool = False) -> Case:
    return Case(kernel, shape, "peer", variant, declarations, setup, call, flops, output,
                expected.astype(np.float32).ravel(), cost, inexact)


def _matmul_args(a: str, b: str, c: str, n: int, k: int, m: int, trans_b: int) -> str:
    """The peer's C (n, m) = A (n, k) . B (k, m), or B given as (m, k) when trans_b."""
    return (f"  struct matMul_args mm_args = {{0}};\n  mm_args.A = {a}; mm_args.B = {b}; "
            f"mm_args.C = {c};\n  mm_args.N = {n}; mm_args.K = {k}; mm_args.M = {m}; "
            f"mm_args.trans_B = {trans_b};\n")


def _gemm_cases(m: int, k: int, n: int, matmuls: tuple[str, ...]) -> list[Case]:
    a, b = _values(m * k, 7).reshape(m, k), _values(k * n, 5, 2).reshape(k, n)
    expected = a.astype(np.float64) @ b
    declarations = f"float a[{m * k}], b[{k * n}], c[{m * n}];"
    setup = "\n".join([_fill("a", m * k), _fill("b", k * n, 5, 2)])
    shape = f"{m}x{k} . {k}x{n}"
    flops = 2 * m * n * k
    params = (f"  static const edge_matmul_t p = {{{m}, {n}, {k}, 0, 0, 0, {{0}}, {{0}}, {{0}}}};\n"
              "  edge_matmul_f32(&p, a, b, c);")
    cases = [_ours("gemm", shape, declarations, setup, params, flops, "c", expected)]
    for variant in matmuls:
        cases.append(_peer("gemm", shape, variant, declarations,
                           setup + "\n" + _matmul_args("a", "b", "c", m, k, n, 0),
                           f"  {variant}(&mm_args);", flops, "c", expected,
                           7.0 if variant in ("mm", "mm_M") else 3.0))
    return cases


def _linear_cases(rows: int, features_in: int, features_out: int, matmuls: tuple[str, ...],
                  per_token: tuple[str, ...]) -> list[Case]:
    """Ours, and the peer's matmuls on all tokens (`matmuls`) and its layer called once
    per token (with the `per_token` matmuls)."""
    t, i, o = rows, features_in, features_out
    x, w, dy = _values(t * i, 7), _values(o * i, 5, 2), _values(t * o, 7, 3)
    x64, w64, dy64 = (x.reshape(t, i).astype(np.float64), w.reshape(o, i).astype(np.float64),
                      dy.reshape(t, o).astype(np.float64))
    shape = f"{t} tokens, {i} -> {o}"
    flops = 2 * t * i * o
    declarations = (f"float x[{t * i}], w[{o * i}], dy[{t * o}], y[{t * o}], dx[{t * i}], "
                    f"dw[{o * i}], dyt[{o * t}], zero[{o}];")
    setup = "\n".join([_fill("x", t * i), _fill("w", o * i, 5, 2), _fill("dy", t * o, 7, 3)])
    params = f"  static const edge_linear_t p = {{{t}, {i}, {o}}};\n"
    steps = {
        "linear fw": ("y", x64 @ w64.T, "edge_linear_f32(&p, x, w, NULL, y);",
                      _matmul_args("x", "w", "y", t, i, o, 1), ""),
        "linear grad-input": ("dx", dy64 @ w64, "edge_linear_grad_input_f32(&p, dy, w, dx);",
                              _matmul_args("dy", "w", "dx", t, o, i, 0), ""),
        "linear grad-weight": (
            "dw", dy64.T @ x64, "edge_linear_grad_weight_f32(&p, dy, x, dw);",
            _matmul_args("dyt", "x", "dw", o, t, i, 0),
            (f"  struct transp_args tr = {{0}};\n  tr.in_matrix = dy; tr.out_matrix = dyt; "
             f"tr.N = {t}; tr.M = {o};\n")),
    }
    # pulp-trainlib's linear layer takes one vector: blobs of one token, moved along
    def layer(index: int) -> str:
        return (f"  struct blob in_b = {{x, dx, {i}, 1, 1, {i}}},\n"
                f"    w_b = {{w, dw, {o * i}, {i}, {o}, 1}}, b_b = {{zero, zero, {o}, 1, 1, {o}}},\n"
                f"    out_b = {{y, dy, {o}, 1, 1, {o}}};\n"
                f"  struct Linear_args args = {{&in_b, &w_b, &b_b, &out_b, 0, 0, {index}, {index}, "
                f"{index}, 0}};\n")

    cases = []
    for kernel, (output, expected, ours, direct, prologue) in steps.items():
        cases.append(_ours(kernel, shape, declarations, setup, params + "  " + ours, flops,
                           output, expected))
        for variant in matmuls:
            index = MATMULS.index(variant)
            pre = "  transpose_matrix(&tr);\n" if prologue else ""
            cases.append(_peer(kernel, shape, ("transpose_matrix + " if prologue else "") +
                               f"{variant}, all tokens", declarations,
                               setup + "\n" + direct + prologue, pre + f"  {variant}(&mm_args);",
                               flops, output, expected))
            if kernel == "linear grad-weight" or variant not in per_token:
                continue  # (its layer would overwrite dw token by token)
            function, moved = {
                "linear fw": ("pulp_linear_fp32_fw_cl", (f"in_b.data = x + {i} * t; "
                                                         f"out_b.data = y + {o} * t;")),
                "linear grad-input": ("pulp_linear_fp32_bw_input_grads_cl",
                                      f"in_b.diff = dx + {i} * t; out_b.diff = dy + {o} * t;"),
            }[kernel]
            cases.append(_peer(kernel, shape, f"{function} x{t} tokens, {variant}",
                               declarations, setup + "\n" + layer(index),
                               f"  for (int t = 0; t < {t}; t++) {{ {moved} {function}(&args); }}",
                               flops, output, expected))
    return cases


def _conv_reference(x: np.ndarray, w: np.ndarray, dy: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y (no bias), dx and dw of a 3x3 convolution, stride 1, padding 1 (float64)."""
    c, size = x.shape[0], x.shape[1]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((w.shape[0], size, size))
    dx_padded = np.zeros((c, size + 2, size + 2))
    dw = np.zeros_like(w)
    for i in range(3):
        for j in range(3):
            window = padded[:, i:i + size, j:j + size]
            y += np.einsum("oc,chw->ohw", w[:, :, i, j], window)
            dx_padded[:, i:i + size, j:j + size] += np.einsum("oc,ohw->chw", w[:, :, i, j], dy)
            dw[:, :, i, j] = np.einsum("ohw,chw->oc", dy, window)
    return y, dx_padded[:, 1:-1, 1:-1], dw


def _conv_cases(c: int, o: int, size: int, matmuls: tuple[str, ...], naive: bool,
                known_wrong: tuple[str, ...]) -> list[Case]:
    """Forward (without bias: the peer's biased forward is wrong), input and weight
    gradients. With the matmuls in `known_wrong`, also the peer's calls known to compute
    something else, to show it: the biased forward, the backward given padding 1."""
    s, p = size, size + 2
    x, w, b, dy = (_values(c * s * s, 7), _values(o * c * 9, 5, 2), _values(o, 3),
                   _values(o * s * s, 7, 3))
    y, dx, dw = _conv_reference(x.reshape(c, s, s).astype(np.float64),
                                w.reshape(o, c, 3, 3).astype(np.float64),
                                dy.reshape(o, s, s).astype(np.float64))
    shape = f"{c}x{s}x{s} -> {o}, 3x3 pad 1"
    flops = 2 * o * s * s * c * 9
    cost = 10.0 if c < 8 else 3.0
    declarations = (f"float x[{c * s * s}], w[{o * c * 9}], b[{o}], y[{o * s * s}], "
                    f"dy[{o * s * s}], dx[{c * s * s}], dw[{o * c * 9}];")
    setup = "\n".join([_fill("x", c * s * s), _fill("w", o * c * 9, 5, 2), _fill("b", o, 3),
                       _fill("dy", o * s * s, 7, 3)])
    params = (f"  static const edge_conv2d_t p = {{1, {c}, {s}, {s}, {o}, 3, 3, {s}, {s}, "
              "{1, 1}, {1, 1, 1, 1}, {1, 1}, 1};\n")
    i2c = max(c * 9 * s * s, o * 9 * p * p)
    peer_declarations = declarations + (
        f"\nfloat xp[{c * p * p}], dxp[{c * p * p}], i2c[{i2c}], bt[{o * c * 9}];")

    def arguments(im2col: int, matmul: str, input_size: int, pad: int, x_name: str = "x",
                  dx_name: str = "dx", bias: int = 0) -> str:
        q, index = input_size, MATMULS.index(matmul)
        return (f"  struct blob in_b = {{{x_name}, {dx_name}, {c * q * q}, {q}, {q}, {c}}},\n"
                f"    w_b = {{w, dw, {o * c * 9}, 3, 3, {c}}}, b_b = {{b, b, {o}, 1, 1, {o}}},\n"
                f"    out_b = {{y, dy, {o * s * s}, {s}, {s}, {o}}};\n"
                f"  struct Conv2D_args args = {{&in_b, &w_b, &b_b, &out_b, {pad}, {pad}, {pad}, "
                f"{pad}, 1, 1, i2c, bt, 0, 0, 0, {index}, {index}, {index}, {bias}, {im2col}, "
                "0};\n")

    pad_x = f"  struct pad_args pa = {{x, xp, {c}, {s}, {s}, 1, 1, 1, 1, 0}};\n"
    crop = (f"\n  for (int q = 0; q < {c}; q++) for (int i = 0; i < {s}; i++) "
            f"for (int j = 0; j < {s}; j++) dx[(q * {s} + i) * {s} + j] = "
            f"dxp[(q * {p} + i + 1) * {p} + j + 1];")
    steps = {  # kernel: output, expected, ours, the peer's function
        "conv2d fw": ("y", y, "edge_conv2d_f32(&p, x, w, NULL, y);", "pulp_conv2d_fp32_fw_cl"),
        "conv2d grad-input": ("dx", dx, "edge_conv2d_grad_input_f32(&p, dy, w, dx);",
                              "pulp_conv2d_fp32_bw_input_grads_cl"),
        "conv2d grad-weight": ("dw", dw, "edge_conv2d_grad_weight_f32(&p, dy, x, dw);",
                               "pulp_conv2d_fp32_bw_param_grads_cl"),
    }
    cases = []
    for kernel, (output, expected, ours, function) in steps.items():
        cases.append(_ours(kernel, shape, declarations, setup, params + "  " + ours, flops,
                           output, expected, cost))
        call = f"  {function}(&args);"
        variants = []  # variant, arguments and prologue, call, expected
        for matmul in matmuls:
            if kernel == "conv2d fw":
                variants.append((f"im2col CHW + {matmul}", arguments(1, matmul, s, 1), call,
                                 expected))
                if matmul in known_wrong:
                    variants.append((f"im2col CHW + {matmul}, with bias",
                                     arguments(1, matmul, s, 1, bias=1), call,
                                     expected + b[:, None, None]))
                continue
            if matmul in known_wrong:
                variants.append((f"im2col CHW + {matmul}, pad 1 ignored",
                                 arguments(1, matmul, s, 1), call, expected))
            if kernel == "conv2d grad-weight":
                variants.append((f"pad_tensor + im2col CHW + {matmul}, on {p}x{p}",
                                 arguments(1, matmul, p, 0, x_name="xp") + pad_x,
                                 "  pad_tensor(&pa);\n" + call,
                                 expected))
            else:
                variants.append((f"im2col CHW + {matmul}, on {p}x{p} + crop",
                                 arguments(1, matmul, p, 0, dx_name="dxp"), call + crop,
                                 expected))
        if naive:
            variants.append(("naive CHW", arguments(0, "mm", s, 1), call, expected))
        for variant, prologue, peer_call, peer_expected in variants:
            cases.append(_peer(kernel, shape, variant, peer_declarations,
                               setup + "\n" + prologue, peer_call, flops, output, peer_expected,
                               cost * (4.0 if variant.startswith("naive") else 1.0)))
    return cases


def _norm_cases(rows: int, size: int) -> list[Case]:
    n = rows * size
    x, scale, bias, dy = (_values(n, 7), _values(size, 5, -1), _values(size, 3),
                          _values(n, 7, 3))
    x64, dy64 = x.reshape(rows, size).astype(np.float64), dy.reshape(rows, size).astype(np.float64)
    eps = 1e-5
    mean = x64.mean(axis=1, keepdims=True)
    rstd = 1 / np.sqrt(x64.var(axis=1, keepdims=True) + eps)
    normalized = (x64 - mean) * rstd
    g = dy64 * scale
    dx = rstd * (g - g.mean(axis=1, keepdims=True)
                 - normalized * (g * normalized).mean(axis=1, keepdims=True))
    softmax = np.exp(x64 - x64.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    # the softmax backward takes y = a softmax output: the reference's, rounded
    probabilities = softmax.astype(np.float32).ravel()
    y64 = probabilities.reshape(rows, size).astype(np.float64)
    softmax_dx = y64 * (dy64 - (dy64 * y64).sum(axis=1, keepdims=True))
    shape = f"{rows}x{size}"
    declarations = (f"float x[{n}], scale[{size}], bias[{size}], dy[{n}], y[{n}], dx[{n}], "
                    f"dscale[{size}], maxes[{rows}], sums[{rows}];\nstatic const float eps = {eps}f;")
    setup = "\n".join([_fill("x", n), _fill("scale", size, 5, -1), _fill("bias", size, 3),
                       _fill("dy", n, 7, 3)])
    softmax_setup = "\n".join([setup, "  static const float probabilities[] = {" + ", ".join(
        f"{v!r}f" for v in probabilities.tolist()) + "};",
        f"  for (int i = 0; i < {n}; i++) y[i] = probabilities[i];"])
    ln = f"  static const edge_layer_norm_t p = {{{rows}, {size}, {eps}f}};\n"
    sm = f"  static const edge_softmax_t p = {{{rows}, {size}, 1}};\n"
    peer_ln = (f"  struct LayerNorm_args_fp32 args = {{x, scale, bias, y, (float *)&eps, {n}, "
               f"{size}}};\n")
    peer_sm = ("  struct softmax_args args = {0};\n  args.input_data = x; args.output_data = y; "
               "args.input_diff = dx; args.output_diff = dy;\n"
               f"  args.H = {rows}; args.W = {size}; args.maxes = maxes; args.sums = sums;\n")
    return [
        _ours("layer norm fw", shape, declarations, setup,
              ln + "  edge_layer_norm_f32(&p, x, scale, bias, y);", 7 * n, "y",
              normalized * scale + bias),
        _peer("layer norm fw", shape, "pulp_layerNorm_fp32_fw_cl", declarations,
              setup + "\n" + peer_ln, "  pulp_layerNorm_fp32_fw_cl(&args);", 7 * n, "y",
              normalized * scale + bias),
        _ours("layer norm grad-input", shape, declarations, setup,
              ln + "  edge_layer_norm_grad_input_f32(&p, dy, x, scale, dx);", 10 * n, "dx", dx),
        _ours("layer norm grad-scale", shape, declarations, setup,
              ln + "  edge_layer_norm_grad_scale_f32(&p, dy, x, dscale);", 2 * n, "dscale",
              (dy64 * normalized).sum(axis=0)),
        _ours("softmax fw", shape, declarations, setup, sm + "  edge_softmax_f32(&p, x, y);",
              5 * n, "y", softmax),
        _peer("softmax fw", shape, "pulp_softmax_fp32_fw_cl", declarations,
              setup + "\n" + peer_sm, "  pulp_softmax_fp32_fw_cl(&args);", 5 * n, "y", softmax,
              inexact=True),
        _ours("softmax bw", shape, declarations, softmax_setup,
              sm + "  edge_softmax_grad_f32(&p, dy, y, dx);", 4 * n, "dx", softmax_dx),
        _peer("softmax bw", shape, "pulp_softmax_fp32_bw_cl", declarations,
              softmax_setup + "\n" + peer_sm, "  pulp_softmax_fp32_bw_cl(&args);", 4 * n, "dx",
              softmax_dx),
    ]


def cases(all_variants: bool = False) -> list[Case]:
    some = MATMULS if all_variants else FAST_MATMULS
    best = MATMULS if all_variants else FAST_MATMULS[:1]
    return [
        *_gemm_cases(32, 32, 32, MATMULS), *_gemm_cases(64, 128, 128, some),
        *_gemm_cases(64, 64, 64, some),
        *_linear_cases(64, 128, 128, best, best),
        *_conv_cases(3, 64, 32, MATMULS if all_variants else FAST_MATMULS[::2],
                     naive=all_variants, known_wrong=FAST_MATMULS[:1]),
        *_conv_cases(64, 128, 16, best, naive=all_variants,
                     known_wrong=FAST_MATMULS[:1] if all_variants else ()),
        *_norm_cases(64, 128),
    ]


def build(case: Case, directory: Path) -> Path:
    template = OURS_DRIVER if case.side == "ours" else PEER_DRIVER
    (directory / "driver.c").write_text(template % {
        "declarations": case.declarations, "setup": case.setup, "call": case.call,
    })
    if case.side == "ours":
        return build_elf([directory / "driver.c", *sorted(RUNTIME.glob("edge_kernels_*.c")),
                          RUNTIME / "edge_platform.c"],
                         directory / "program.elf", COREV_CPU, include=[RUNTIME])
    (directory / "link_stubs.c").write_text(LINK_STUBS)
    sources = [PEER / "lib" / "sources" / f"pulp_{name}_fp32.c" for name in PEER_SOURCES]
    return build_elf([directory / "driver.c", directory / "link_stubs.c", *sources,
                      PEER / "stub" / "mini_libc.c"], directory / "program.elf", COREV_CPU,
                     include=[PEER / "stub", PEER / "lib" / "include"], defines=["OPTIMIZE"],
                     cwd=PEER)


def measure(case: Case) -> Result:
    """Builds and runs `case`; its instruction count and the relative error of its output."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            program = Program(build(case, Path(tmp)), memory=16 << 20)
            count = program.count_between_marks()
        except (RuntimeError, EmulationError) as e:
            lines = str(e).strip().splitlines()
            reason = next((line for line in lines if "error" in line), lines[0])
            return Result(case, 0, float("inf"), reason.strip()[:100])
        actual = np.frombuffer(program.read(case.output, 4 * case.expected.size), np.float32)
    scale = float(np.abs(case.expected).max()) or 1.0
    difference = np.abs(actual.astype(np.float64) - case.expected)
    error = float("inf") if not np.isfinite(difference).all() else float(difference.max()) / scale
    return Result(case, count, error)


def _cells(result: Result) -> str:
    """Instructions and FLOP per instruction of `result`."""
    if result.failure:
        return f"{'-':>12} {'-':>10}"
    return f"{result.count:>12,} {result.case.flops / result.count:>10.3f}"


def _table(results: list[Result]) -> list[str]:
    """Per kernel shape: ours and the peer's best variant (the fewest instructions among
    the correct ones; when none is, the best of the others, marked)."""
    by_kernel: dict[tuple[str, str], dict[str, list[Result]]] = {}
    for result in results:
        sides = by_kernel.setdefault((result.case.kernel, result.case.shape), {})
        sides.setdefault(result.case.side, []).append(result)
    header = (f"{'kernel':<22} {'shape':<26} {'ours instr':>12} {'FLOP/instr':>10}  "
              f"{'peer variant':<58} {'peer instr':>12} {'FLOP/instr':>10} {'peer/ours':>10}")
    lines = [header, "-" * len(header)]
    for (kernel, shape), sides in by_kernel.items():
        ours = sides["ours"][0]
        peers = sorted(sides.get("peer", []),
                       key=lambda r: (not r.valid, bool(r.failure), r.count))
        line = f"{kernel:<22} {shape:<26} {_cells(ours)}  "
        if not peers:
            line += f"{'n/a (no such kernel in pulp-trainlib)':<58} {'-':>12} {'-':>10} {'-':>10}"
        else:
            peer = peers[0]
            variant = peer.case.variant if peer.valid else f"{peer.case.variant} {peer.status}"
            if ours.failure or peer.failure:
                ratio = "-"
            else:
                ratio = f"{peer.count / ours.count:.2f}"
                ratio = ratio if peer.valid and ours.valid else f"({ratio})"
            line += f"{variant:<58} {_cells(peer)} {ratio:>10}"
        if not ours.valid:
            line += f"   ours: {ours.status}"
        lines.append(line)
    return lines


def _variants(results: list[Result]) -> list[str]:
    """Every measurement, in the order of `results`."""
    header = (f"{'kernel':<22} {'shape':<26} {'side':<4} {'variant':<58} {'instructions':>12} "
              f"{'FLOP/instr':>10}  check")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.case.kernel:<22} {r.case.shape:<26} {r.case.side:<4} "
                     f"{r.case.variant or 'edge-opt runtime':<58} {_cells(r)}  {r.status}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", metavar="SUBSTRING", default="",
                        help="run the kernels whose 'kernel shape' contains SUBSTRING")
    parser.add_argument("--all-variants", action="store_true",
                        help="every peer matmul in the layers, naive conv on every shape")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    arguments = parser.parse_args()
    if not PEER.is_dir():
        raise SystemExit(f"pulp-trainlib not found at {PEER}")
    everything = cases(arguments.all_variants)
    selected = [case for case in everything
                if arguments.only.lower() in f"{case.kernel} {case.shape}".lower()]
    if not selected:
        raise SystemExit(f"no kernel matches {arguments.only!r}")
    selected.sort(key=lambda case: -case.flops * case.cost)
    results = []
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=arguments.jobs) as pool:
        futures = {pool.submit(measure, case): case for case in selected}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            case = result.case
            print(f"[{done}/{len(selected)} {time.monotonic() - start:5.0f} s] {case.kernel} "
                  f"{case.shape}, {case.variant or 'edge-opt runtime'}: {result.count:,} "
                  f"{result.status}",
                  file=sys.stderr)
            results.append(result)
    order: dict[tuple[str, str], int] = {}
    for case in everything:
        order.setdefault((case.kernel, case.shape), len(order))
    results.sort(key=lambda r: (order[(r.case.kernel, r.case.shape)], r.case.side != "ours",
                                not r.valid, r.count))
    print("\n".join(_table(results)))
    print("\nEvery measurement:")
    print("\n".join(_variants(results)))


if __name__ == "__main__":
    main()
