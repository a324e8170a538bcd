/* edge-opt runtime: matrix products (see edge_kernels_linalg.h).
 *
 * Every kernel is a product C = A B (+ bias) of strided operands, computed by
 * `gemm_range` over a contiguous range of C's elements: full rows in 4x6 register
 * blocks (24 accumulators, 10 loads per 24 multiply-adds) and 4x4 blocks (16
 * accumulators, 8 loads per 16, k unrolled by two), the rest in 1x4, 4x1 and 1x1
 * blocks. All blocks compute an element the same way (acc = 0;
 * acc += A(i,k) B(k,j) for k = 0, 1, ...; + bias), so which block, and which core,
 * computes it does not change a bit of the result. The hot blocks are specialised for
 * the unit strides of the four layouts (the compiler sees those strides as constants);
 * on RISC-V with CORE-V the 4x6 blocks of a row are one asm statement (asm_4x6_*).
 *
 * Executed instructions on one RV32 core (zig/clang -O2, CORE-V flags; exact counts of
 * bench/riscv_kernels.py's emulator), FLOP per instruction: 64x128x128 linear (A.B^T,
 * with bias) 1.29, A.B 1.30, A^T.B 1.26; 64x64x64: 1.25, 1.26, 1.25; 32x32x32: 1.08,
 * 1.12, 1.12 (C blocks: 1.09, 1.13, 1.14; 1.06, 1.10, 1.16; 0.90, 0.94, 0.99). */
#include "edge_runtime.h"

typedef edge_gemm_t gemm_t;

/* The 4x6 blocks in assembly (asm_blocks_4x6) on RISC-V with CORE-V; not at -O0 (the
 * asm's operands would not fit the registers) nor with EDGE_GEMM_NO_ASM (the tests
 * compare the two builds). */
#if defined(__riscv) && defined(__riscv_flen) && defined(__riscv_xcvmem) &&            \
    defined(__riscv_xcvalu) && defined(__OPTIMIZE__) && !defined(EDGE_GEMM_NO_ASM)
#define EDGE_GEMM_ASM 1
#else
#define EDGE_GEMM_ASM 0
#endif

EDGE_INLINE float finish(const gemm_t *g, float acc, int32_t j) {
  return g->bias ? acc + g->bias[j] : acc;
}

/* Writes C(i, j) at `c`: acc (+ bias), or C(i, j) + acc when accumulating. */
EDGE_INLINE void put(const gemm_t *g, float *c, float acc, int32_t j) {
  *c = g->accumulate ? *c + acc : finish(g, acc, j);
}

EDGE_INLINE void kernel_4x4(const gemm_t *g, int32_t i, int32_t j, int32_t sam,
                            int32_t sak, int32_t sbk, int32_t sbn) {
  const float *a_row = g->a + i * sam, *b_col = g->b + j * sbn;
  float c00 = 0.0f, c01 = 0.0f, c02 = 0.0f, c03 = 0.0f;
  float c10 = 0.0f, c11 = 0.0f, c12 = 0.0f, c13 = 0.0f;
  float c20 = 0.0f, c21 = 0.0f, c22 = 0.0f, c23 = 0.0f;
  float c30 = 0.0f, c31 = 0.0f, c32 = 0.0f, c33 = 0.0f;
#define STEP_4x4(da, db)                                                               \
  do {                                                                                 \
    float a0 = a[da], a1 = a[da + sam], a2 = a[da + 2 * sam], a3 = a[da + 3 * sam];   \
    float b0 = b[db], b1 = b[db + sbn], b2 = b[db + 2 * sbn], b3 = b[db + 3 * sbn];   \
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;                   \
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;                   \
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;                   \
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;                   \
  } while (0)
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    int32_t k = g->k;
    for (; k >= 2; k -= 2) {
      STEP_4x4(0, 0);
      STEP_4x4(sak, sbk);
      a += 2 * sak;
      b += 2 * sbk;
    }
    if (k) STEP_4x4(0, 0);
  }
#undef STEP_4x4
  float *c = g->c + i * g->scm + j * g->scn;
  const int32_t cs = g->scn;
#define STORE_4x4(r)                                                                   \
  do {                                                                                 \
    put(g, c, c##r##0, j); put(g, c + cs, c##r##1, j + 1);                             \
    put(g, c + 2 * cs, c##r##2, j + 2); put(g, c + 3 * cs, c##r##3, j + 3);            \
    c += g->scm;                                                                       \
  } while (0)
  STORE_4x4(0);
  STORE_4x4(1);
  STORE_4x4(2);
  STORE_4x4(3);
#undef STORE_4x4
}

/* The widest block: 4 rows x 6 columns, 24 accumulators, 10 loads per 24
 * multiply-adds. A column at a time: the 4 values of A stay in registers and each
 * value of B is used as it is loaded (24 + 4 + 1 of the 32 FP registers live; the
 * accumulation order per element is that of the other blocks). */
EDGE_INLINE void kernel_4x6(const gemm_t *g, int32_t i, int32_t j, int32_t sam,
                            int32_t sak, int32_t sbk, int32_t sbn, int32_t unroll) {
  const float *a_row = g->a + i * sam, *b_col = g->b + j * sbn;
  float c00 = 0.0f, c01 = 0.0f, c02 = 0.0f, c03 = 0.0f, c04 = 0.0f, c05 = 0.0f;
  float c10 = 0.0f, c11 = 0.0f, c12 = 0.0f, c13 = 0.0f, c14 = 0.0f, c15 = 0.0f;
  float c20 = 0.0f, c21 = 0.0f, c22 = 0.0f, c23 = 0.0f, c24 = 0.0f, c25 = 0.0f;
  float c30 = 0.0f, c31 = 0.0f, c32 = 0.0f, c33 = 0.0f, c34 = 0.0f, c35 = 0.0f;
#define COLUMN_4x6(col)                                                                \
  do {                                                                                 \
    float y = b[(col) * sbn];                                                          \
    c0##col += a0 * y; c1##col += a1 * y; c2##col += a2 * y; c3##col += a3 * y;         \
  } while (0)
#define STEP_4x6()                                                                     \
  do {                                                                                 \
    float a0 = a[0], a1 = a[sam], a2 = a[2 * sam], a3 = a[3 * sam];                   \
    COLUMN_4x6(0);                                                                     \
    COLUMN_4x6(1);                                                                     \
    COLUMN_4x6(2);                                                                     \
    COLUMN_4x6(3);                                                                     \
    COLUMN_4x6(4);                                                                     \
    COLUMN_4x6(5);                                                                     \
    a += sak;                                                                          \
    b += sbk;                                                                          \
  } while (0)
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    int32_t k = g->k;
    /* Unrolled by two where B is transposed (its six column addresses advance once per
     * two steps); the empty asm keeps clang from hoisting the second step's loads above
     * the first step's multiply-adds, which makes it spill. */
    if (unroll)
      for (; k >= 2; k -= 2) {
        STEP_4x6();
        __asm__ volatile("" ::: "memory");
        STEP_4x6();
        __asm__ volatile("" ::: "memory");
      }
    for (; k > 0; k--) STEP_4x6();
  }
#undef STEP_4x6
#undef COLUMN_4x6
  float *c = g->c + i * g->scm + j * g->scn;
  const int32_t cs = g->scn;
#define STORE_4x6(r)                                                                   \
  do {                                                                                 \
    put(g, c, c##r##0, j); put(g, c + cs, c##r##1, j + 1);                             \
    put(g, c + 2 * cs, c##r##2, j + 2); put(g, c + 3 * cs, c##r##3, j + 3);            \
    put(g, c + 4 * cs, c##r##4, j + 4); put(g, c + 5 * cs, c##r##5, j + 5);            \
    c += g->scm;                                                                       \
  } while (0)
  STORE_4x6(0);
  STORE_4x6(1);
  STORE_4x6(2);
  STORE_4x6(3);
#undef STORE_4x6
}

EDGE_INLINE void kernel_1x4(const gemm_t *g, int32_t i, int32_t j, int32_t sam,
                            int32_t sak, int32_t sbk, int32_t sbn) {
  const float *a_row = g->a + i * sam, *b_col = g->b + j * sbn;
  float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
#define STEP_1x4(da, db)                                                               \
  do {                                                                                 \
    float a0 = a[da];                                                                  \
    c0 += a0 * b[db];                                                                  \
    c1 += a0 * b[db + sbn];                                                            \
    c2 += a0 * b[db + 2 * sbn];                                                        \
    c3 += a0 * b[db + 3 * sbn];                                                        \
  } while (0)
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    int32_t k = g->k;
    for (; k >= 2; k -= 2) {
      STEP_1x4(0, 0);
      STEP_1x4(sak, sbk);
      a += 2 * sak;
      b += 2 * sbk;
    }
    if (k) STEP_1x4(0, 0);
  }
#undef STEP_1x4
  float *c = g->c + i * g->scm + j * g->scn;
  put(g, c, c0, j);
  put(g, c + g->scn, c1, j + 1);
  put(g, c + 2 * g->scn, c2, j + 2);
  put(g, c + 3 * g->scn, c3, j + 3);
}

/* The four layouts, each with its unit strides as constants: A row-major (sak = 1) or
 * transposed (sam = 1), B row-major (sbn = 1) or transposed (sbk = 1). `linear` is
 * A.B^T, `linear_grad_input` A.B, `linear_grad_weight` A^T.B, `matmul` any of them. */
#define DISPATCH(kernel, g, i, j)                                                      \
  do {                                                                                 \
    if ((g)->sak == 1 && (g)->sbn == 1)                                                \
      kernel(g, i, j, (g)->sam, 1, (g)->sbk, 1);                                       \
    else if ((g)->sak == 1 && (g)->sbk == 1)                                           \
      kernel(g, i, j, (g)->sam, 1, 1, (g)->sbn);                                       \
    else if ((g)->sam == 1 && (g)->sbn == 1)                                           \
      kernel(g, i, j, 1, (g)->sak, (g)->sbk, 1);                                       \
    else if ((g)->sam == 1 && (g)->sbk == 1)                                           \
      kernel(g, i, j, 1, (g)->sak, 1, (g)->sbn);                                       \
    else /* a weight tap of a convolution: A strided both ways */                      \
      kernel(g, i, j, (g)->sam, (g)->sak, (g)->sbk, (g)->sbn);                         \
  } while (0)

/* Specialised for the unit strides of each layout; B transposed (A.B^T, the linear
 * layer) unrolled by two. Not inlined: in full_rows clang would spill. */
__attribute__((noinline)) static void block_4x6(const gemm_t *g, int32_t i, int32_t j) {
  if (g->sbn != 1 && g->sak == 1 && g->sbk == 1)
    kernel_4x6(g, i, j, g->sam, 1, 1, g->sbn, 1);
  else if (g->sbn != 1)
    kernel_4x6(g, i, j, g->sam, g->sak, g->sbk, g->sbn, 1);
  else if (g->sak == 1)
    kernel_4x6(g, i, j, g->sam, 1, g->sbk, 1, 0);
  else if (g->sam == 1)
    kernel_4x6(g, i, j, 1, g->sak, g->sbk, 1, 0);
  else
    kernel_4x6(g, i, j, g->sam, g->sak, g->sbk, 1, 0);
}

/* --- The 4x6 blocks in assembly (RISC-V with CORE-V, optimised builds) -------------
 *
 * In C, clang spills or recomputes addresses in kernel_4x6's loop (77 to 86
 * instructions per two k-steps instead of 68 loads and multiply-adds). The asm keeps
 * the 24 accumulators in f0..f23 (acc (r, c) in f(6r + c)), A's 4 values in f24..f27
 * and B's values alternately in f28 and f29 (a column's 4 multiply-adds run while the
 * next column loads), and unrolls k so that pointer increments are shared: where a
 * pointer moves one element per step the steps use immediate offsets from it. The
 * registers are clobbers, not operands (GCC allows 30 operands per asm). Each element
 * is computed as in C: acc = 0, acc = fmadd(A(i, k), B(k, j), acc) for k in order, then
 * stored, + bias, or added to C. What the asm reads besides its pointers is a plan in
 * memory (its offsets in brackets). */
#if EDGE_GEMM_ASM
typedef struct {
  float *c;                     /* [0] C(i, j) of the block, unit column stride */
  int32_t scm;                  /* [4] C's row stride in bytes */
  const float *bias;            /* [8] bias[j] (mode 1) */
  int32_t mode;                 /* [12] 0: C = acc, 1: C = acc + bias, 2: C = C + acc */
  int32_t main_bytes;           /* [16] the counting pointer's advance in the unrolled */
  int32_t tail_bytes;           /* [20] loop of a run, then in its single steps */
  int32_t runs;                 /* [24] runs left (scratch) */
  int32_t a_skip, b_skip;       /* [28], [32] from the end of a run to the next one */
  int32_t blocks;               /* [36] blocks after the current one (scratch) */
  int32_t a_back, b_next;       /* [40], [44] from the end of a block's last run to the */
  int32_t reps;                 /* [48] next block's start; runs per block */
} plan_t;

_Static_assert(sizeof(void *) == 4 && sizeof(plan_t) == 52, "the asm's offsets");

#define FMA4(r0, r1, r2, r3, fb)                                                       \
  "fmadd.s f" #r0 ", f24, " fb ", f" #r0 "\n\t fmadd.s f" #r1 ", f25, " fb ", f" #r1  \
  "\n\t fmadd.s f" #r2 ", f26, " fb ", f" #r2 "\n\t fmadd.s f" #r3 ", f27, " fb        \
  ", f" #r3 "\n\t"
/* The 6 columns of a step, A in f24..f27: LB(c, c's byte offset in B's row, register,
 * off) loads B(k, j + c) (column 0 is already in f28) */
#define COLUMNS(LB, off)                                                               \
  LB(1, "4", "f29", off) FMA4(0, 6, 12, 18, "f28") LB(2, "8", "f28", off)              \
  FMA4(1, 7, 13, 19, "f29") LB(3, "12", "f29", off) FMA4(2, 8, 14, 20, "f28")          \
  LB(4, "16", "f28", off) FMA4(3, 9, 15, 21, "f29") LB(5, "20", "f29", off)            \
  FMA4(4, 10, 16, 22, "f28") FMA4(5, 11, 17, 23, "f29")
#define LOAD(reg, off, p) "flw " reg ", " off "(%[" p "])\n\t"
/* A.B^T: A's rows and B's columns run along k, 10 pointers at byte offset `off` */
#define LB_T(c, bytes, reg, off) LOAD(reg, off, "pb" #c)
#define STEP_T(off)                                                                    \
  LOAD("f28", off, "pb0") LOAD("f24", off, "pa0") LOAD("f25", off, "pa1")              \
  LOAD("f26", off, "pa2") LOAD("f27", off, "pa3") COLUMNS(LB_T, off)
/* B's row k at pb (its columns 4 bytes apart) */
#define LB_ROW(c, bytes, reg, off) LOAD(reg, bytes, "pb")
/* A.B: A's rows along k at byte offset `off`; B's row, then pb += sbk */
#define STEP_N(off)                                                                    \
  LOAD("f28", "0", "pb") LOAD("f24", off, "pa0") LOAD("f25", off, "pa1")               \
  LOAD("f26", off, "pa2") LOAD("f27", off, "pa3") COLUMNS(LB_ROW, off)                 \
  "add %[pb], %[pb], %[sbk]\n\t"
/* A^T.B: A's column k at pa (rows 4 bytes apart), B's row k at pb */
#define STEP_TN(off)                                                                   \
  LOAD("f28", "0", "pb") LOAD("f24", "0", "pa") LOAD("f25", "4", "pa")                 \
  LOAD("f26", "8", "pa") LOAD("f27", "12", "pa") COLUMNS(LB_ROW, off)                  \
  "add %[pa], %[pa], %[sak]\n\t add %[pb], %[pb], %[sbk]\n\t"
/* A strided both ways (a convolution's weights): 4 row pointers += sak */
#define STEP_G(off)                                                                    \
  LOAD("f28", "0", "pb") LOAD("f24", "0", "pa0") LOAD("f25", "0", "pa1")               \
  LOAD("f26", "0", "pa2") LOAD("f27", "0", "pa3") COLUMNS(LB_ROW, off)                 \
  "add %[pa0], %[pa0], %[sak]\n\t add %[pa1], %[pa1], %[sak]\n\t"                      \
  "add %[pa2], %[pa2], %[sak]\n\t add %[pa3], %[pa3], %[sak]\n\t"                      \
  "add %[pb], %[pb], %[sbk]\n\t"
#define ADD4(p, q, r, s, by)                                                           \
  "addi %[" p "], %[" p "], " by "\n\t addi %[" q "], %[" q "], " by "\n\t"             \
  "addi %[" r "], %[" r "], " by "\n\t addi %[" s "], %[" s "], " by "\n\t"
#define STEPS_8(STEP)                                                                  \
  STEP("0") STEP("4") STEP("8") STEP("12") STEP("16") STEP("20") STEP("24") STEP("28")
#define STEPS_4(STEP) STEP("0") STEP("0") STEP("0") STEP("0")

#define ZERO6(a, b, c, d, e, f)                                                        \
  "fmv.w.x f" #a ", zero\n\t fmv.w.x f" #b ", zero\n\t fmv.w.x f" #c ", zero\n\t"      \
  "fmv.w.x f" #d ", zero\n\t fmv.w.x f" #e ", zero\n\t fmv.w.x f" #f ", zero\n\t"
#define ZERO_4x6                                                                       \
  ZERO6(0, 1, 2, 3, 4, 5) ZERO6(6, 7, 8, 9, 10, 11) ZERO6(12, 13, 14, 15, 16, 17)      \
  ZERO6(18, 19, 20, 21, 22, 23)
/* Runs of k steps: `unrolled` (advancing the counting pointer `ctr` by main_bytes), then
 * `single` steps (tail_bytes), then `next` (the pointers to the next run). */
#define RUNS(ctr, unrolled, single, next)                                              \
  "1:\n\t lw %[t], 16(%[plan])\n\t beqz %[t], 3f\n\t add %[end], %[" ctr "], %[t]\n\t" \
  "2:\n\t" unrolled "bne %[" ctr "], %[end], 2b\n\t"                                   \
  "3:\n\t lw %[t], 20(%[plan])\n\t beqz %[t], 5f\n\t add %[end], %[" ctr "], %[t]\n\t" \
  "4:\n\t" single "bne %[" ctr "], %[end], 4b\n\t"                                     \
  "5:\n\t lw %[t], 24(%[plan])\n\t addi %[t], %[t], -1\n\t beqz %[t], 6f\n\t"          \
  "sw %[t], 24(%[plan])\n\t" next "j 1b\n\t 6:\n\t"
/* p += the plan's field at `offset` */
#define SKIP(offset, p) "lw %[t], " #offset "(%[plan])\n\t"  p
#define ADD(p) "add %[" p "], %[" p "], %[t]\n\t"

/* The finish, with pc and rs free registers: row by row, C at pc, rows rs bytes apart */
#define STORE6(a, b, c, d, e, f)                                                       \
  "fsw f" #a ", 0(%[pc])\n\t fsw f" #b ", 4(%[pc])\n\t fsw f" #c ", 8(%[pc])\n\t"      \
  "fsw f" #d ", 12(%[pc])\n\t fsw f" #e ", 16(%[pc])\n\t fsw f" #f ", 20(%[pc])\n\t"   \
  "add %[pc], %[pc], %[rs]\n\t"
#define BIAS6(a, b, c, d, e, f)                                                        \
  "fadd.s f" #a ", f" #a ", f24\n\t fadd.s f" #b ", f" #b ", f25\n\t"                   \
  "fadd.s f" #c ", f" #c ", f26\n\t fadd.s f" #d ", f" #d ", f27\n\t"                   \
  "fadd.s f" #e ", f" #e ", f28\n\t fadd.s f" #f ", f" #f ", f29\n\t"                   \
  STORE6(a, b, c, d, e, f)
#define LOAD6(p)                                                                       \
  "flw f24, 0(%[" p "])\n\t flw f25, 4(%[" p "])\n\t flw f26, 8(%[" p "])\n\t"         \
  "flw f27, 12(%[" p "])\n\t flw f28, 16(%[" p "])\n\t flw f29, 20(%[" p "])\n\t"
#define ACCUMULATE6(a, b, c, d, e, f)                                                  \
  LOAD6("pc") "fadd.s f" #a ", f24, f" #a "\n\t fadd.s f" #b ", f25, f" #b "\n\t"     \
  "fadd.s f" #c ", f26, f" #c "\n\t fadd.s f" #d ", f27, f" #d "\n\t"                  \
  "fadd.s f" #e ", f28, f" #e "\n\t fadd.s f" #f ", f29, f" #f "\n\t"                  \
  STORE6(a, b, c, d, e, f)
#define ROWS(OP)                                                                       \
  OP(0, 1, 2, 3, 4, 5) OP(6, 7, 8, 9, 10, 11) OP(12, 13, 14, 15, 16, 17)               \
  OP(18, 19, 20, 21, 22, 23)
#define FINISH                                                                         \
  "lw %[pc], 0(%[plan])\n\t lw %[rs], 4(%[plan])\n\t lw %[t], 12(%[plan])\n\t"         \
  "bnez %[t], 7f\n\t" ROWS(STORE6) "j 9f\n\t"                                          \
  "7:\n\t addi %[t], %[t], -1\n\t bnez %[t], 8f\n\t lw %[t], 8(%[plan])\n\t"          \
  LOAD6("t") ROWS(BIAS6) "j 9f\n\t"                                                    \
  "8:\n\t" ROWS(ACCUMULATE6) "9:"
/* On to the next block of the row, if any: A's pointers back, B's on, C and bias on by 6
 * columns */
#define NEXT_BLOCK(adds_a, adds_b)                                                     \
  "lw %[t], 36(%[plan])\n\t beqz %[t], 10f\n\t addi %[t], %[t], -1\n\t"             \
  "sw %[t], 36(%[plan])\n\t" SKIP(40, adds_a) SKIP(44, adds_b)                         \
  "lw %[t], 0(%[plan])\n\t addi %[t], %[t], 24\n\t sw %[t], 0(%[plan])\n\t"          \
  "lw %[t], 8(%[plan])\n\t addi %[t], %[t], 24\n\t sw %[t], 8(%[plan])\n\t"          \
  "lw %[t], 48(%[plan])\n\t sw %[t], 24(%[plan])\n\t j 0b\n\t 10:"
/* The blocks: `ctr`, `unrolled` and `single` as RUNS; adds_a and adds_b add t to A's and
 * B's pointers */
#define BLOCKS(ctr, unrolled, single, adds_a, adds_b)                                  \
  "0:\n\t" ZERO_4x6 RUNS(ctr, unrolled, single, SKIP(28, adds_a) SKIP(32, adds_b))    \
  FINISH NEXT_BLOCK(adds_a, adds_b)
#define ADDS_A4 ADD("pa0") ADD("pa1") ADD("pa2") ADD("pa3")
#define CLOBBERS                                                                       \
  "memory", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11",  \
      "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22",     \
      "f23", "f24", "f25", "f26", "f27", "f28", "f29"

/* A.B^T (sak = sbk = 1): k unrolled by 8, 10 pointer increments per 8 steps */
#define ADD10(by)                                                                      \
  ADD4("pa0", "pa1", "pa2", "pa3", by) ADD4("pb0", "pb1", "pb2", "pb3", by)             \
  "addi %[pb4], %[pb4], " by "\n\t addi %[pb5], %[pb5], " by "\n\t"
EDGE_INLINE void asm_4x6_t(plan_t *plan, const float *a, int32_t sam, const float *b,
                           int32_t sbn) {
  const float *pa0 = a, *pa1 = a + sam, *pa2 = a + 2 * sam, *pa3 = a + 3 * sam;
  const float *pb0 = b, *pb1 = b + sbn, *pb2 = b + 2 * sbn, *pb3 = b + 3 * sbn;
  const float *pb4 = b + 4 * sbn, *pb5 = b + 5 * sbn, *end;
  int32_t t, pc, rs;
  __asm__ volatile(
      BLOCKS("pa0", STEPS_8(STEP_T) ADD10("32"), STEP_T("0") ADD10("4"), ADDS_A4,
             ADD("pb0") ADD("pb1") ADD("pb2") ADD("pb3") ADD("pb4") ADD("pb5"))
      : [pa0] "+r"(pa0), [pa1] "+r"(pa1), [pa2] "+r"(pa2), [pa3] "+r"(pa3),
        [pb0] "+r"(pb0), [pb1] "+r"(pb1), [pb2] "+r"(pb2), [pb3] "+r"(pb3),
        [pb4] "+r"(pb4), [pb5] "+r"(pb5), [end] "=&r"(end), [t] "=&r"(t),
        [pc] "=&r"(pc), [rs] "=&r"(rs)
      : [plan] "r"(plan)
      : CLOBBERS);
}

/* A.B (sak = sbn = 1): k unrolled by 8, A's 4 pointers advance once per 8 steps */
EDGE_INLINE void asm_4x6_n(plan_t *plan, const float *a, int32_t sam, const float *b,
                           int32_t sbk) {
  const float *pa0 = a, *pa1 = a + sam, *pa2 = a + 2 * sam, *pa3 = a + 3 * sam, *pb = b;
  const float *end;
  int32_t t, pc, rs;
  __asm__ volatile(
      BLOCKS("pa0", STEPS_8(STEP_N) ADD4("pa0", "pa1", "pa2", "pa3", "32"),
             STEP_N("0") ADD4("pa0", "pa1", "pa2", "pa3", "4"), ADDS_A4, ADD("pb"))
      : [pa0] "+r"(pa0), [pa1] "+r"(pa1), [pa2] "+r"(pa2), [pa3] "+r"(pa3),
        [pb] "+r"(pb), [end] "=&r"(end), [t] "=&r"(t), [pc] "=&r"(pc), [rs] "=&r"(rs)
      : [plan] "r"(plan), [sbk] "r"(4 * sbk)
      : CLOBBERS);
}

/* A^T.B (sam = sbn = 1): one pointer per operand, += its stride each step */
EDGE_INLINE void asm_4x6_tn(plan_t *plan, const float *a, int32_t sak, const float *b,
                            int32_t sbk) {
  const float *pa = a, *pb = b, *end;
  int32_t t, pc, rs;
  __asm__ volatile(
      BLOCKS("pa", STEPS_4(STEP_TN), STEP_TN("0"), ADD("pa"), ADD("pb"))
      : [pa] "+r"(pa), [pb] "+r"(pb), [end] "=&r"(end), [t] "=&r"(t), [pc] "=&r"(pc),
        [rs] "=&r"(rs)
      : [plan] "r"(plan), [sak] "r"(4 * sak), [sbk] "r"(4 * sbk)
      : CLOBBERS);
}

/* A strided both ways, B's rows unit-stride (the convolutions' weights x activations) */
EDGE_INLINE void asm_4x6_g(plan_t *plan, const float *a, int32_t sam, int32_t sak,
                           const float *b, int32_t sbk) {
  const float *pa0 = a, *pa1 = a + sam, *pa2 = a + 2 * sam, *pa3 = a + 3 * sam, *pb = b;
  const float *end;
  int32_t t, pc, rs;
  __asm__ volatile(
      BLOCKS("pa0", STEPS_4(STEP_G), STEP_G("0"), ADDS_A4, ADD("pb"))
      : [pa0] "+r"(pa0), [pa1] "+r"(pa1), [pa2] "+r"(pa2), [pa3] "+r"(pa3),
        [pb] "+r"(pb), [end] "=&r"(end), [t] "=&r"(t), [pc] "=&r"(pc), [rs] "=&r"(rs)
      : [plan] "r"(plan), [sak] "r"(4 * sak), [sbk] "r"(4 * sbk)
      : CLOBBERS);
}
#undef FMA4
#undef COLUMNS
#undef LOAD
#undef LB_T
#undef STEP_T
#undef LB_ROW
#undef STEP_N
#undef STEP_TN
#undef STEP_G
#undef ADD4
#undef ADD10
#undef STEPS_8
#undef STEPS_4
#undef ZERO6
#undef ZERO_4x6
#undef RUNS
#undef SKIP
#undef ADD
#undef STORE6
#undef BIAS6
#undef LOAD6
#undef ACCUMULATE6
#undef ROWS
#undef FINISH
#undef NEXT_BLOCK
#undef BLOCKS
#undef ADDS_A4
#undef CLOBBERS

enum { LAYOUT_C, LAYOUT_T, LAYOUT_N, LAYOUT_TN, LAYOUT_G };

/* The asm's layout for g's strides (LAYOUT_C: the C blocks), its unroll and the
 * counting pointer's advance per step in bytes (never 0). */
EDGE_INLINE int32_t asm_layout(const gemm_t *g, int32_t *unroll, int32_t *step) {
  *unroll = 8;
  *step = 4;
  if (g->sak == 1 && g->sbk == 1) return LAYOUT_T;
  if (g->sbn != 1) return LAYOUT_C;
  if (g->sak == 1) return LAYOUT_N;
  *unroll = 4;
  *step = 4 * g->sak;
  if (g->sak == 0) return LAYOUT_C;
  return g->sam == 1 ? LAYOUT_TN : LAYOUT_G;
}

/* C(i.., j..) from the block's accumulators, stored row-major in acc (C strided) */
static void put_4x6(const gemm_t *g, int32_t i, int32_t j, const float acc[24]) {
  for (int32_t r = 0; r < 4; r++)
    for (int32_t col = 0; col < 6; col++)
      put(g, g->c + (i + r) * g->scm + (j + col) * g->scn, acc[6 * r + col], j + col);
}

/* The 4x6 blocks at row i, columns 0, 6, ..., 6 (count - 1), in asm (one statement for
 * them all when C's columns are unit-stride, else one per block finished in C); 0 if
 * it does not apply (then nothing is done). */
EDGE_INLINE int32_t asm_blocks_4x6(const gemm_t *g, int32_t i, int32_t count) {
  int32_t unroll, step;
  const int32_t layout = asm_layout(g, &unroll, &step);
  if (layout == LAYOUT_C) return 0;
  float acc[24];
  const int32_t direct = g->scn == 1, k = g->k;
  plan_t plan;
  plan.scm = direct ? 4 * g->scm : 24;
  plan.mode = !direct ? 0 : g->accumulate ? 2 : g->bias ? 1 : 0;
  plan.main_bytes = k / unroll * unroll * step;
  plan.tail_bytes = k % unroll * step;
  plan.a_skip = 4 * (g->rep_a - k * g->sak);
  plan.b_skip = 4 * (g->rep_b - k * g->sbk);
  plan.reps = g->reps > 1 ? g->reps : 1;
  plan.a_back = -4 * ((plan.reps - 1) * g->rep_a + k * g->sak);
  plan.b_next = 4 * (6 * g->sbn - (plan.reps - 1) * g->rep_b - k * g->sbk);
  const float *a = g->a + i * g->sam;
  const int32_t per_asm = direct ? count : 1; /* blocks per asm statement */
  for (int32_t j = 0; j < 6 * count; j += 6 * per_asm) {
    const float *b = g->b + j * g->sbn;
    plan.c = direct ? g->c + i * g->scm + j : acc;
    plan.bias = g->bias ? g->bias + j : NULL;
    plan.runs = plan.reps;
    plan.blocks = per_asm - 1;
    if (layout == LAYOUT_T)
      asm_4x6_t(&plan, a, g->sam, b, g->sbn);
    else if (layout == LAYOUT_N)
      asm_4x6_n(&plan, a, g->sam, b, g->sbk);
    else if (layout == LAYOUT_TN)
      asm_4x6_tn(&plan, a, g->sak, b, g->sbk);
    else
      asm_4x6_g(&plan, a, g->sam, g->sak, b, g->sbk);
    if (!direct) put_4x6(g, i, j, acc);
  }
  return 1;
}
#endif

/* The 4x6 blocks at row i, columns 0, 6, ..., 6 (count - 1). Not inlined: the asm
 * clobbers every FP register, saved once per row of blocks. */
__attribute__((noinline)) static void blocks_4x6(const gemm_t *g, int32_t i,
                                                 int32_t count) {
#if EDGE_GEMM_ASM
  if (asm_blocks_4x6(g, i, count)) return;
#endif
  for (int32_t j = 0; j < 6 * count; j += 6) block_4x6(g, i, j);
}

static void block_4x4(const gemm_t *g, int32_t i, int32_t j) {
  DISPATCH(kernel_4x4, g, i, j);
}

static void block_1x4(const gemm_t *g, int32_t i, int32_t j) {
  DISPATCH(kernel_1x4, g, i, j);
}

static void block_4x1(const gemm_t *g, int32_t i, int32_t j) {
  const float *a_row = g->a + i * g->sam, *b_col = g->b + j * g->sbn;
  int32_t sam = g->sam;
  float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    for (int32_t k = g->k; k > 0; k--) {
      float b0 = b[0];
      c0 += a[0] * b0;
      c1 += a[sam] * b0;
      c2 += a[2 * sam] * b0;
      c3 += a[3 * sam] * b0;
      a += g->sak;
      b += g->sbk;
    }
  }
  float *c = g->c + i * g->scm + j * g->scn;
  put(g, c, c0, j);
  put(g, c + g->scm, c1, j);
  put(g, c + 2 * g->scm, c2, j);
  put(g, c + 3 * g->scm, c3, j);
}

static void block_1x1(const gemm_t *g, int32_t i, int32_t j) {
  const float *a_row = g->a + i * g->sam, *b_col = g->b + j * g->sbn;
  float c0 = 0.0f;
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    for (int32_t k = g->k; k > 0; k--) {
      c0 += a[0] * b[0];
      a += g->sak;
      b += g->sbk;
    }
  }
  put(g, g->c + i * g->scm + j * g->scn, c0, j);
}

/* Columns [j0, j1) of row i. */
static void row_segment(const gemm_t *g, int32_t i, int32_t j0, int32_t j1) {
  int32_t j = j0;
  for (; j + 4 <= j1; j += 4) block_1x4(g, i, j);
  for (; j < j1; j++) block_1x1(g, i, j);
}

/* Rows [i0, i1), all columns. */
static void full_rows(const gemm_t *g, int32_t i0, int32_t i1) {
  /* 4x6 blocks, leaving 8 columns to two 4x4 blocks rather than 2 to 4x1 blocks (the
   * slowest; but 9 columns in two 4x4 and a 4x1 are slower than 3 in 4x1 on a
   * convolution's strided A); none on a narrow C where they leave more single columns */
  const int32_t n = g->n;
  int32_t wide = n / 6 - (n % 6 == 2); /* 4x6 blocks per row of blocks */
  if (wide < 0 || (n < 24 && (n - 6 * wide) % 4 > n % 4)) wide = 0;
  int32_t i = i0;
  for (; i + 4 <= i1; i += 4) {
    int32_t j = 6 * wide;
    if (wide > 0) blocks_4x6(g, i, wide);
    for (; j + 4 <= n; j += 4) block_4x4(g, i, j);
    for (; j < n; j++) block_4x1(g, i, j);
  }
  for (; i < i1; i++) row_segment(g, i, 0, n);
}

void edge_gemm_rows_f32(const edge_gemm_t *g, int32_t i0, int32_t i1) {
  full_rows(g, i0, i1);
}

/* --- B rows gathered (edge_gemm_gather_t) ------------------------------------------- */

/* acc += the `rows` x `cols` block of one step: A(i.., step) at a[r * sam], B(step,
 * j..) at b. A column at a time, as kernel_4x6: the A values stay in registers and each
 * B value is used as it is loaded (the empty asm keeps clang from hoisting the loads,
 * which makes it spill). */
EDGE_INLINE void gather_step(float acc[4][6], const float *a, const int32_t sam,
                             const float *b, const int32_t rows, const int32_t cols,
                             const int32_t sbn) {
  float x[4];
  for (int32_t r = 0; r < rows; r++) x[r] = a[r * sam];
  for (int32_t c = 0; c < cols; c++) {
    const float y = b[c * sbn];
    for (int32_t r = 0; r < rows; r++) acc[r][c] += x[r] * y;
    __asm__ volatile("" ::: "memory");
  }
}

/* C(i.., j..) = the `rows` x `cols` block of A B (+ bias), `rows` <= 4 and `cols` <= 6
 * constants (the loops unroll into registers), A's row stride `sam` a constant where
 * the caller can (immediate load offsets from one address). */
EDGE_INLINE void gather_block(const edge_gemm_gather_t *g, int32_t i, int32_t j,
                              const int32_t rows, const int32_t cols, const int32_t sam,
                              const int32_t sbn) {
  float acc[4][6] = {{0.0f}};
  const float *a = g->a + i * sam;
  int32_t b_offset = j * sbn;
  for (int32_t u = g->k; u > 0; u--, a += g->a_step, b_offset += g->b_step) {
    const float *const *row = g->rows;
    const int32_t *offset = g->offsets;
    for (int32_t t = g->taps; t > 0; t--)
      gather_step(acc, a + *offset++, sam, *row++ + b_offset, rows, cols, sbn);
  }
  float *out = g->c + i * g->scm + j;
  for (int32_t r = 0; r < rows; r++, out += g->scm) {
    const float bias = g->bias ? g->bias[i + r] : 0.0f;
    for (int32_t c = 0; c < cols; c++) out[c] = acc[r][c] + bias;
  }
}

/* Blocks of `rows` rows at row i: `rows` x 6, then one `rows` x 4 and one `rows` x 2
 * where they fit, then `rows` x 1. */
EDGE_INLINE void gather_rows_of(const edge_gemm_gather_t *g, int32_t i, const int32_t rows,
                                const int32_t sam) {
  int32_t j = 0;
  if (g->sbn == 1)
    for (; j + 6 <= g->n; j += 6) gather_block(g, i, j, rows, 6, sam, 1);
  else
    for (; j + 6 <= g->n; j += 6) gather_block(g, i, j, rows, 6, sam, g->sbn);
  if (j + 4 <= g->n) {
    gather_block(g, i, j, rows, 4, sam, g->sbn);
    j += 4;
  }
  if (j + 2 <= g->n) {
    gather_block(g, i, j, rows, 2, sam, g->sbn);
    j += 2;
  }
  if (j < g->n) gather_block(g, i, j, rows, 1, sam, g->sbn);
}

/* A's row stride as a constant for 3x3 kernels: the forward on 3 channels (27) and
 * the input gradient (9, the taps of one channel). */
__attribute__((noinline)) static void gather_4(const edge_gemm_gather_t *g, int32_t i) {
  if (g->sam == 27)
    gather_rows_of(g, i, 4, 27);
  else if (g->sam == 9)
    gather_rows_of(g, i, 4, 9);
  else
    gather_rows_of(g, i, 4, g->sam);
}

__attribute__((noinline)) static void gather_3(const edge_gemm_gather_t *g, int32_t i) {
  if (g->sam == 9)
    gather_rows_of(g, i, 3, 9);
  else
    gather_rows_of(g, i, 3, g->sam);
}

__attribute__((noinline)) static void gather_1(const edge_gemm_gather_t *g, int32_t i) {
  gather_rows_of(g, i, 1, g->sam);
}

/* Blocks of 4 rows; 3 rows (an image's colour channels) where 3 remain. */
void edge_gemm_gather_rows_f32(const edge_gemm_gather_t *g, int32_t i0, int32_t i1) {
  int32_t i = i0;
  for (; i + 4 <= i1; i += 4) gather_4(g, i);
  if (i + 3 == i1) {
    gather_3(g, i);
    return;
  }
  for (; i < i1; i++) gather_1(g, i);
}

/* Elements [begin, end) of C in row-major order: the rest of a first row, full rows,
 * the start of a last row. */
static void gemm_range(const gemm_t *g, int32_t begin, int32_t end) {
  if (begin >= end) return;
  int32_t i = begin / g->n, j = begin % g->n;
  int32_t last = (end - 1) / g->n, last_end = (end - 1) % g->n + 1;
  if (i == last) {
    row_segment(g, i, j, last_end);
    return;
  }
  if (j > 0) row_segment(g, i++, j, g->n);
  if (last_end < g->n) {
    full_rows(g, i, last);
    row_segment(g, last, 0, last_end);
  } else {
    full_rows(g, i, last + 1);
  }
}

/* One product split between the cores. */
static void gemm(const gemm_t *g, int32_t m) {
  int32_t begin, end;
  edge_split(m * g->n, &begin, &end);
  gemm_range(g, begin, end);
  edge_barrier();
}

void edge_linear_f32(const edge_linear_t *p, const float *x, const float *w,
                     const float *bias, float *y) {
  int32_t in = p->in_features;
  gemm_t g = {x, w, bias, y, p->out_features, in, in, 1, 1, in, p->out_features, 1, 0,
              1, 0, 0};
  gemm(&g, p->rows);
}

void edge_linear_grad_input_f32(const edge_linear_t *p, const float *dy, const float *w,
                                float *dx) {
  int32_t in = p->in_features, out = p->out_features;
  gemm_t g = {dy, w, NULL, dx, in, out, out, 1, in, 1, in, 1, 0, 1, 0, 0};
  gemm(&g, p->rows);
}

void edge_linear_grad_weight_f32(const edge_linear_t *p, const float *dy, const float *x,
                                 float *dw) {
  int32_t in = p->in_features, out = p->out_features;
  gemm_t g = {dy, x, NULL, dw, in, p->rows, 1, out, in, 1, in, 1, 0, 1, 0, 0};
  gemm(&g, out);
}

void edge_matmul_f32(const edge_matmul_t *p, const float *lhs, const float *rhs,
                     float *out) {
  int32_t m = p->m, n = p->n, k = p->k, size = m * n, batches = 1;
  for (int32_t axis = 0; axis < p->batch_rank; axis++) batches *= p->batch_shape[axis];
  gemm_t g = {lhs, rhs, NULL, out, n, k,
              p->transpose_lhs ? 1 : k, p->transpose_lhs ? m : 1,
              p->transpose_rhs ? 1 : n, p->transpose_rhs ? k : 1, n, 1, 0, 1, 0, 0};
  int32_t begin, end;
  edge_split(batches * size, &begin, &end);
  if (begin < end) {
    for (int32_t batch = begin / size; batch * size < end; batch++) {
      int32_t rest = batch, l = 0, r = 0;
      for (int32_t axis = p->batch_rank - 1; axis >= 0; axis--) {
        int32_t coordinate = rest % p->batch_shape[axis];
        rest /= p->batch_shape[axis];
        l += coordinate * p->lhs_batch_strides[axis];
        r += coordinate * p->rhs_batch_strides[axis];
      }
      int32_t first = batch * size;
      g.a = lhs + l;
      g.b = rhs + r;
      g.c = out + first;
      gemm_range(&g, begin > first ? begin - first : 0,
                 end - first < size ? end - first : size);
    }
  }
  edge_barrier();
}
