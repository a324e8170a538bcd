"""The fp32 products' CORE-V build, whose 4x6 blocks are assembly
(edge_kernels_linalg.c, asm_blocks_4x6), on emulated RV32 cores: bit for bit equal to
the same program built with -DEDGE_GEMM_NO_ASM (the C blocks, whose numerics the host
tests check), and close to a float64 NumPy product (so that both builds cannot agree on
something wrong). The host tests cannot run the assembly.

The cases cover the asm's four layouts (A.B^T, A.B, A^T.B, and A strided both ways as
a convolution's weights) with the strides its bodies specialise, the C layout A^T.B^T, m and n that leave 4x4, 1x4, 4x1 and
1x1 blocks, k = 1, odd, below and above the unrolls (4 and 8), the bias, accumulation
into C, C strided between columns, and contractions in several runs (reps), on teams of
1 and 3 cores (a core's share then starts and ends inside rows).
"""

from __future__ import annotations

import numpy as np
import pytest
from c_checks import TEAM_DRIVER
from c_runtime import RUNTIME

# (m, n, k): every remainder of m mod 4, of n mod 6 and mod 4, k around the unrolls;
# the strides the asm specialises (32, 64, 128 floats) as k (A.B^T's sam = sbn, A.B's
# sbk in matmul) and as m or n (A^T.B's sak, A.B's sbk in the linear layer)
SHAPES = [(4, 6, 1), (5, 7, 3), (8, 12, 8), (7, 13, 9), (9, 20, 17), (12, 26, 4),
          (6, 9, 2), (13, 14, 33), (3, 6, 5), (4, 32, 16), (13, 32, 32), (9, 64, 64),
          (5, 128, 21), (6, 10, 128), (32, 8, 11)]



class Cases:
    """The C declarations and calls of the cases, and the float64 reference of each
    output array (by name)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.declarations: list[str] = []
        self.calls: list[str] = []
        self.expected: dict[str, np.ndarray] = {}

    def array(self, name: str, values: np.ndarray) -> str:
        """A float array holding `values` exactly (as bit patterns)."""
        bits = np.asarray(values, np.float32).ravel().view(np.uint32)
        body = ", ".join(f"0x{int(b):08x}u" for b in bits)
        self.declarations.append(
            f"union {{ uint32_t u[{bits.size}]; float f[{bits.size}]; }} "
            f"{name} = {{{{{body}}}}};")
        return f"{name}.f"

    def output(self, name: str, expected: np.ndarray, initial=None) -> str:
        self.expected[name] = np.asarray(expected, np.float64)
        if initial is not None:
            return self.array(name, initial)
        self.declarations.append(f"float {name}[{max(expected.size, 1)}];")
        return name

    def random(self, *shape) -> np.ndarray:
        return np.asarray(self.rng.standard_normal(shape), np.float32)

    def matmul(self, name: str, m: int, n: int, k: int, ta: int, tb: int) -> None:
        a, b = self.random(*((k, m) if ta else (m, k))), self.random(*((n, k) if tb else (k, n)))
        ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        lhs, rhs, out = self.array(f"{name}_a", a), self.array(f"{name}_b", b), \
            self.output(name, ref)
        self.declarations.append(
            f"static const edge_matmul_t {name}_p = {{{m}, {n}, {k}, {ta}, {tb}, 0}};")
        self.calls.append(f"edge_matmul_f32(&{name}_p, {lhs}, {rhs}, {out});")

    def linear(self, name: str, m: int, n: int, k: int) -> None:
        """The linear layer with bias, its input gradient and its weight gradient."""
        x, w, b, dy = self.random(m, k), self.random(n, k), self.random(n), \
            self.random(m, n)
        x64, w64, dy64 = (v.astype(np.float64) for v in (x, w, dy))
        xs, ws, bs, dys = (self.array(f"{name}_{v}", a) for v, a in
                           (("x", x), ("w", w), ("b", b), ("dy", dy)))
        y = self.output(f"{name}_y", x64 @ w64.T + b)
        dx = self.output(f"{name}_dx", dy64 @ w64)
        dw = self.output(f"{name}_dw", dy64.T @ x64)
        self.declarations.append(
            f"static const edge_linear_t {name}_p = {{{m}, {k}, {n}}};")
        self.calls += [f"edge_linear_f32(&{name}_p, {xs}, {ws}, {bs}, {y});",
                       f"edge_linear_grad_input_f32(&{name}_p, {dys}, {ws}, {dx});",
                       f"edge_linear_grad_weight_f32(&{name}_p, {dys}, {xs}, {dw});"]

    def gemm(self, name: str, m: int, n: int, k: int, reps: int, a_strides, b_strides,
             scn: int, accumulate: bool, bias: bool) -> None:
        """edge_gemm_rows_f32 on core 0: A(i, k) of run r at a[i * sam + k * sak + r *
        rep_a] (likewise B), C(i, j) at c[i * n * scn + j * scn]."""
        (sam, sak, rep_a), (sbk, sbn, rep_b) = a_strides, b_strides
        a_size = (m - 1) * sam + (k - 1) * sak + (reps - 1) * rep_a + 1
        b_size = (k - 1) * sbk + (n - 1) * sbn + (reps - 1) * rep_b + 1
        a, b = self.random(a_size), self.random(b_size)
        bias_values, c0 = self.random(n), self.random(m * n * scn)
        ref = np.zeros((m, n))
        for r in range(reps):
            av = np.array([[a[i * sam + kk * sak + r * rep_a] for kk in range(k)]
                           for i in range(m)], np.float64)
            bv = np.array([[b[kk * sbk + j * sbn + r * rep_b] for j in range(n)]
                           for kk in range(k)], np.float64)
            ref += av @ bv
        expected = c0.astype(np.float64).copy()
        view = expected.reshape(m, n * scn)[:, ::scn]
        view[...] = view + ref if accumulate else ref + (bias_values if bias else 0)
        a_name, b_name = self.array(f"{name}_a", a), self.array(f"{name}_b", b)
        bias_name = self.array(f"{name}_bias", bias_values) if bias else "NULL"
        c = self.output(name, expected, initial=c0)
        self.declarations.append(
            f"static const edge_gemm_t {name}_g = {{{a_name}, {b_name}, {bias_name}, {c}, "
            f"{n}, {k}, {sam}, {sak}, {sbk}, {sbn}, {n * scn}, {scn}, {int(accumulate)}, "
            f"{reps}, {rep_a}, {rep_b}}};")
        self.calls.append(f"if (edge_core_id() == 0) edge_gemm_rows_f32(&{name}_g, 0, {m});"
                          " edge_barrier();")


def _cases() -> Cases:
    cases = Cases(np.random.default_rng(23))
    for index, (m, n, k) in enumerate(SHAPES):
        for ta in (0, 1):
            for tb in (0, 1):
                cases.matmul(f"mm{index}_{ta}{tb}", m, n, k, ta, tb)
        cases.linear(f"lin{index}", m, n, k)
    for index, (m, n, k) in enumerate([(9, 13, 7), (4, 12, 1), (8, 19, 16)]):
        for reps in (1, 3):
            # A.B^T with C strided (a convolution's weight gradient) and accumulated
            cases.gemm(f"t{index}_{reps}", m, n, k, reps, (k + 2, 1, 2 * k), (1, k + 3, k),
                       3, True, False)
            # A.B, accumulated; A^T.B with bias
            cases.gemm(f"n{index}_{reps}", m, n, k, reps, (k, 1, m * k), (n + 1, 1, 5),
                       1, True, False)
            cases.gemm(f"tn{index}_{reps}", m, n, k, reps, (1, m + 2, 3), (n, 1, k * n),
                       1, False, True)
            # A strided both ways (a convolution's weights), accumulated
            cases.gemm(f"g{index}_{reps}", m, n, k, reps, (9 * k, 9, 1), (n + 2, 1, 1),
                       1, True, False)
            # the specialised strides, with runs, bias, accumulation, C strided
            cases.gemm(f"ts{index}_{reps}", m, n, k, reps, (32, 1, 40), (1, 32, 3),
                       1, False, True)
            cases.gemm(f"tsc{index}_{reps}", m, n, k, reps, (64, 1, 9), (1, 64, 2),
                       3, True, False)
            cases.gemm(f"ns{index}_{reps}", m, n, k, reps, (k, 1, m * k), (64, 1, 5),
                       1, False, True)
            cases.gemm(f"tns{index}_{reps}", m, n, k, reps, (1, 128, 3), (n, 1, k * n),
                       1, True, False)
            cases.gemm(f"tnb{index}_{reps}", m, n, k, reps, (1, 64, 3), (64, 1, 7),
                       1, False, False)
    # A^T.B with sak = sbk = 128 and a 4x4 block, k over several trips
    cases.gemm("tnb_narrow", 8, 16, 20, 2, (1, 128, 3), (128, 1, 7), 1, True, False)
    return cases


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """The cases, built with the asm and without it (two ELFs for the team emulator)."""
    from edge_opt.backends.rv32.emulator import build_elf

    cases = _cases()
    directory = tmp_path_factory.mktemp("linalg_corev")
    (directory / "driver.c").write_text(TEAM_DRIVER % {
        "declarations": "\n".join(cases.declarations),
        "calls": "\n".join(f"  {c}" for c in cases.calls)})
    sources = [directory / "driver.c", RUNTIME / "edge_kernels_linalg.c",
               RUNTIME / "edge_platform.c"]
    elves = [build_elf(sources, directory / f"{name}.elf", include=[RUNTIME],
                       defines=["EDGE_EMULATED", *extra])
             for name, extra in (("asm", []), ("c", ["EDGE_GEMM_NO_ASM"]))]
    return cases, elves


def _run(elf, cores: int, names) -> tuple[dict[str, np.ndarray], int]:
    """The output arrays after a run on `cores` emulated cores, and the instructions
    executed."""
    from edge_opt.backends.rv32.emulator import Program
    from edge_opt.backends.rv32.team import Team

    program = Program(elf)
    program.uc.mem_write(program.symbols["team"], cores.to_bytes(4, "little"))
    counts = Team(program, cores).run()
    outputs = {name: np.frombuffer(program.read(name, program.sizes[name]), np.uint32)
               for name in names}
    return outputs, sum(sum(core.values()) for core in counts.instructions)


@pytest.mark.parametrize("cores", [1, 3])
def test_corev_asm_equals_c_blocks(programs, cores):
    cases, (asm_elf, c_elf) = programs
    asm, asm_counts = _run(asm_elf, cores, cases.expected)
    c, c_counts = _run(c_elf, cores, cases.expected)
    assert asm_counts < c_counts  # the asm ran
    for name, expected in cases.expected.items():
        np.testing.assert_array_equal(asm[name], c[name], err_msg=name)
        actual = asm[name][:expected.size].view(np.float32).astype(np.float64)
        np.testing.assert_allclose(actual, expected.ravel(), rtol=1e-4, atol=1e-4,
                                   err_msg=name)
