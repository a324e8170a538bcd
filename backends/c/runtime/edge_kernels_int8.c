/* edge-opt runtime: int8 kernels (see edge_kernels_int8.h for the numerics).
 *
 * Both kernels are products of byte rows: output (i, j) = requantize(bias[j] + the
 * reduction of left row i with right row j), the left rows being rows of x (linear) or
 * output pixels (convolution: their inputs), the right rows rows of w or output
 * channels (their weights). A reduction is one or more runs of bytes contiguous in
 * both operands (the convolution: a kernel row, or a tap, inside the input).
 *
 * They are computed in register blocks of M x N outputs: 4x4 (16 accumulators; per
 * 4-byte step 4 + 4 loaded words for 16 cv.sdotsp.b, 64 MACs in 25 instructions), then
 * 4x1, 1x4 and 1x1 for what is left. On CORE-V the 4x4 blocks of a row of blocks, from
 * the bias to the stored int8 outputs, are one asm statement (blocks_4x4: clang does
 * not manage the 27 registers a block needs). The linear kernel blocks 4 rows of x by
 * 4 rows of w; the convolution 4 pixels (along an output row, or down an output column
 * at the borders, pixels with the same taps) by 4 output channels. Every block
 * computes an output the same way up to the order of the int32 additions, which wrap
 * modulo 2^32 and so commute: which block, and which core, computes an output does not
 * change a bit of it.
 *
 * Executed instructions on one core (zig/clang -O2, bench/riscv_kernels.py's emulator),
 * MACs per instruction with CORE-V (RV32IMC without): linear 32x32 . (32x32)T 1.40
 * (0.18; the requantisation of its short rows weighs), 64x256 . (64x256)T 2.34 (0.23),
 * conv2d 16->16 3x3 16x16 NHWC 2.04 (0.23). */
#include "edge_runtime.h"

/* Fully unrolls a loop over a block's rows or columns (M, N <= 4, constants), so that
 * its accumulators are scalars in registers: clang otherwise unrolls some of them after
 * its last scalar replacement and keeps the block in memory. */
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define UNROLL _Pragma("GCC unroll 4")
#else
#define UNROLL
#endif

/* The 4x4 blocks in assembly (blocks_4x4). Not at -O0: there the plan's address takes
 * a register, one more than there are. */
#if defined(__riscv_xcvsimd) && defined(__riscv_xcvmem) && defined(__riscv_xcvalu) && \
    defined(__OPTIMIZE__)
#define EDGE_INT8_ASM 1
#else
#define EDGE_INT8_ASM 0
#endif

typedef v4s v4s_word __attribute__((may_alias));

/* Four consecutive int8 as a v4s word. PULP / CORE-V cores load misaligned words in
 * hardware, so the RISC-V build reads the word as such; elsewhere memcpy keeps the load
 * defined at any alignment. */
static inline v4s load4(const int8_t *p) {
#if defined(__riscv)
  return *(const v4s_word *)(const void *)p;
#else
  v4s v;
  __builtin_memcpy(&v, p, 4);
  return v;
#endif
}

/* The word at *p, then *p += step. A block walks its rows as one chain (row 0, 1, ...,
 * then back to row 0's next word): M rows cost 3 registers (pointer, stride, way back)
 * instead of M pointers. With CORE-V a step is one post-increment load (cv.lw rd, (p),
 * step!), written as such: clang turns the C chain back into M pointers. The input
 * words do not change during a kernel, so the asm needs no memory operand. */
EDGE_INLINE v4s next4(const int8_t **p, int32_t step) {
  v4s v;
#if defined(__riscv_xcvmem)
  if (!__builtin_constant_p(step)) {
    int32_t word;
    __asm__("cv.lw %0, (%1), %2" : "=r"(word), "+r"(*p) : "r"(step));
    __builtin_memcpy(&v, &word, 4);
    return v;
  }
#endif
  v = load4(*p);
  *p += step;
  return v;
}

/* acc + a * b with wrapping int32 arithmetic (no signed overflow in C). */
static inline int32_t mac(int32_t acc, int8_t a, int8_t b) {
  return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)a * (int32_t)b));
}

/* acc[i][j] += sum_{t < count} a[i * sa + t] * b[j * sb + t], byte by byte (the last
 * len % 4 bytes of a run), i < M, j < N */
EDGE_INLINE void macs(int M, int N, const int8_t *a, int32_t sa, const int8_t *b,
                      int32_t sb, int32_t count, int32_t acc[4][4]) {
  for (int32_t t = 0; t < count; t++)
    UNROLL for (int i = 0; i < M; i++)
      UNROLL for (int j = 0; j < N; j++)
        acc[i][j] = mac(acc[i][j], a[i * sa + t], b[j * sb + t]);
}

/* One 4-byte step of dot_block: *a and *b advance by 4 (their chains end at row 0). */
EDGE_INLINE void dot_step(int M, int N, const int8_t **a, int32_t sa, const int8_t **b,
                          int32_t sb, int32_t acc[4][4]) {
  v4s va[4];
  UNROLL for (int i = 0; i < M; i++)
    va[i] = next4(a, i + 1 < M ? sa : 4 - (M - 1) * sa);
  UNROLL for (int j = 0; j < N; j++) {
    v4s vb = next4(b, j + 1 < N ? sb : 4 - (N - 1) * sb);
    UNROLL for (int i = 0; i < M; i++)
      acc[i][j] = __builtin_pulp_sdotsp4(va[i], vb, acc[i][j]);
  }
}

/* acc[i][j] += sum_{k < len} a[i * sa + k] * b[j * sb + k], i < M, j < N (M, N <= 4,
 * constants): one loaded word of a row of a serves N dot products, one of b M. */
EDGE_INLINE void dot_block(int M, int N, const int8_t *a, int32_t sa, const int8_t *b,
                           int32_t sb, int32_t len, int32_t acc[4][4]) {
  for (uint32_t k = (uint32_t)len >> 2; k != 0; k--)
    dot_step(M, N, &a, sa, &b, sb, acc);
  macs(M, N, a, sa, b, sb, len & 3, acc);
}

/* ----------------------------------------------------------------------------------
 * Requantisation
 * ---------------------------------------------------------------------------------- */

/* clip(floor((acc * scale + r) / 2^shift), -128, 127), r = 2^(shift-1) or 0: exact.
 * Not inlined: the 64-bit path is the rare one, and inlined it is 25 instructions. */
__attribute__((noinline)) static int8_t requantize(int32_t acc, int32_t scale,
                                                   int32_t shift) {
  int64_t v = (int64_t)acc * scale;
  if (shift > 0) v = (v + ((int64_t)1 << (shift - 1))) >> shift;
  return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

/* x clipped to [-bound - 1, bound] (cv.clipr; clang does not select it) */
static inline int32_t clip_around(int32_t x, int32_t bound) {
#if defined(__riscv_xcvalu)
  __asm__("cv.clipr %0, %1, %2" : "=r"(x) : "r"(x), "r"(bound));
  return x;
#else
  return x < -bound - 1 ? -bound - 1 : (x > bound ? bound : x);
#endif
}

/* x clipped to [-128, 127] (cv.clip x, 8: one instruction instead of two) */
static inline int32_t clip8(int32_t x) {
#if defined(__riscv_xcvalu)
  __asm__("cv.clip %0, %1, 8" : "=r"(x) : "r"(x));
  return x;
#else
  return x < -128 ? -128 : (x > 127 ? 127 : x);
#endif
}

/* One tensor's scale and shift, and what the 32-bit path needs. */
typedef struct {
  int32_t scale, shift;
  int32_t bound; /* > 0: the 32-bit path (below); 0: requantize() */
  int32_t round; /* 2^(shift-1), or 0 */
  int32_t clip;  /* 0: no accumulator needs clip_around (the 4x4 asm then skips it) */
} quant_t;

/* The 32-bit path computes clip8((clip_around(acc, bound) * scale + round) >> shift)
 * in int32. Exact: with bound * |scale| > 2^(shift+7) every acc >= bound, and every
 * acc <= -bound - 1, already gives the saturated result (127 or -128, by the sign of
 * scale) that it gives at the bound, and the clipped acc * scale + round cannot
 * overflow. It needs shift <= 23 (then 2^(shift+7) and the division fit in 32 bits:
 * no 64-bit division helper) and |scale| small enough; otherwise requantize(). The
 * clip changes nothing (clip 0) if even the largest accumulator possible, `terms`
 * products of magnitude <= 2^14 plus the largest of the `n` biases, cannot make
 * acc * scale + round overflow. */
static quant_t quant_init(int32_t scale, int32_t shift, const int32_t *bias, int32_t n,
                          int32_t terms) {
  quant_t q = {scale, shift, 0, 0, 1};
  if (shift > 23 || scale == 0) return q;
  const uint32_t magnitude = scale < 0 ? 0u - (uint32_t)scale : (uint32_t)scale;
  const uint32_t bound = ((uint32_t)128 << shift) / magnitude + 1;
  const uint32_t round = shift > 0 ? (uint32_t)1 << (shift - 1) : 0;
  if ((uint64_t)(bound + 1) * magnitude + round > (uint64_t)INT32_MAX) return q;
  q.bound = (int32_t)bound;
  q.round = (int32_t)round;
  uint32_t most = 0; /* the largest |bias| */
  for (int32_t j = 0; bias && j < n; j++) {
    const uint32_t b = bias[j] < 0 ? 0u - (uint32_t)bias[j] : (uint32_t)bias[j];
    most = b > most ? b : most;
  }
  const uint64_t largest = ((uint64_t)terms << 14) + most;
  q.clip = largest > (uint64_t)INT32_MAX ||
           largest * magnitude + round > (uint64_t)INT32_MAX;
  return q;
}

EDGE_INLINE int8_t quantize(const quant_t *q, int32_t acc) {
  return (int8_t)clip8((clip_around(acc, q->bound) * q->scale + q->round) >> q->shift);
}

/* y[i * ys + j] = the requantized acc[i][j], i < M, j < N */
EDGE_INLINE void finish(int M, int N, const quant_t *quant, int32_t acc[4][4],
                        int8_t *y, int32_t ys) {
  const quant_t copy = *quant, *q = &copy; /* in registers: the stores to y may alias */
  if (q->bound) {
    UNROLL for (int i = 0; i < M; i++)
      UNROLL for (int j = 0; j < N; j++) y[i * ys + j] = quantize(q, acc[i][j]);
    return;
  }
  UNROLL for (int i = 0; i < M; i++)
    UNROLL for (int j = 0; j < N; j++)
      y[i * ys + j] = requantize(acc[i][j], q->scale, q->shift);
}

/* ----------------------------------------------------------------------------------
 * Blocks of outputs
 * ---------------------------------------------------------------------------------- */

/* The reduction of one output: `rows` x `runs` runs of `len` bytes, contiguous in both
 * operands. From one run to the next the operands advance by a_run and b_run bytes,
 * from one row to the next (first runs) by a_row and b_row. */
typedef struct {
  int32_t len, runs, rows;
  int32_t a_run, b_run, a_row, b_row;
} reduction_t;

/* A product: right row j at b + j * sb, its bias at bias[j] (bias NULL: 0). */
typedef struct {
  reduction_t r;
  const int8_t *b;
  int32_t sb;
  const int32_t *bias;
  quant_t q;
} job_t;

/* The outputs (i, j0 + j), i < M, j < N, left row i at a + i * sa, written at
 * y[i * ys + j0 + j]. */
EDGE_INLINE void block(int M, int N, const job_t *job, const int8_t *a, int32_t sa,
                       int32_t j0, int8_t *y, int32_t ys) {
  int32_t acc[4][4];
  UNROLL for (int i = 0; i < M; i++)
    UNROLL for (int j = 0; j < N; j++) acc[i][j] = job->bias ? job->bias[j0 + j] : 0;
  const reduction_t *r = &job->r;
  const int8_t *b = job->b + j0 * job->sb;
  for (int32_t row = 0; row < r->rows; row++, a += r->a_row, b += r->b_row) {
    const int8_t *ar = a, *br = b;
    for (int32_t run = 0; run < r->runs; run++, ar += r->a_run, br += r->b_run)
      dot_block(M, N, ar, sa, br, job->sb, r->len, acc);
  }
  finish(M, N, &job->q, acc, y + j0, ys);
}

#if EDGE_INT8_ASM
/* The 4x4 blocks on CORE-V: one asm statement for a row of blocks, from the bias to
 * the stored outputs. A block's 16 accumulators, 5 words and two chains take all 27
 * registers clang allocates (s0 is the frame pointer). Written in C, clang spills
 * accumulators inside the loop (29 to 35 instructions per 4-byte step instead of 25)
 * and around it (about 60 per run and 100 per block). What the asm reads besides is a
 * plan in memory (its offsets in brackets). */
typedef struct {
  const int32_t *init; /* [0] the bias of the block's columns, or zeros */
  int8_t *y;           /* [4] output (0, 0) of the block; rows ys bytes apart [8] */
  int32_t ys;
  int32_t bytes;          /* [12] of the words of a run, > 0 */
  int32_t runs, rows;     /* [16], [20] > 0 */
  int32_t a_skip, b_skip; /* [24], [28] from the end of a run's words to the next run */
  int32_t a_row, b_row;   /* [32], [36] from there (a row's last run) to the next row */
  int32_t bound;          /* [40] quant_t's; 0: one block, its acc left in the plan */
  int32_t scale, round, shift;  /* [44], [48], [52] */
  int32_t runs_left, rows_left; /* [56], [60] scratch */
  const int8_t *end;            /* [64] scratch: the current run's end in b */
  int32_t acc[4][4];            /* [68] */
  const int8_t *a, *b;          /* [132], [136]: the block's first run */
  int32_t b_step, init_step;    /* [140], [144]: from a block to the next one */
  int32_t blocks_left;          /* [148] blocks after the current one */
  int32_t clip;                 /* [152] quant_t's */
  int32_t odd;                  /* [156] bytes / 4 is odd */
} plan_t;

_Static_assert(sizeof(void *) == 4 && sizeof(plan_t) == 160, "the asm's offsets");

/* a0 = the plan's field at `offset` */
#define FIELD(offset) "lw %[a0], " #offset "+%[plan]\n\t"
/* acc[i][j] = init[j] */
#define INIT_4x4                                                                       \
  FIELD(0) "lw %[c00], 0(%[a0])\n\t lw %[c01], 4(%[a0])\n\t"                           \
  "lw %[c02], 8(%[a0])\n\t lw %[c03], 12(%[a0])\n\t" COPY_4x4(1) COPY_4x4(2) COPY_4x4(3)
#define COPY_4x4(i)                                                                    \
  "mv %[c" #i "0], %[c00]\n\t mv %[c" #i "1], %[c01]\n\t"                              \
  "mv %[c" #i "2], %[c02]\n\t mv %[c" #i "3], %[c03]\n\t"
/* acc[i][j] += a_i . b_j, with the word of b row j in b */
#define SDOT_4x4(i, j) "cv.sdotsp.b %[c" #i #j "], %[a" #i "], %[b]\n\t"
/* the word of a row or b row, then the chain's step */
#define LOAD_4x4(word, p, step) "cv.lw %[" word "], (%[" p "]), %[" step "]\n\t"
/* p += the plan's field at `offset` */
#define SKIP_4x4(p, offset) FIELD(offset) "add %[" p "], %[" p "], %[a0]\n\t"
/* Unless the count at `offset` (what is left) is 0: decrements it, skips pa and pb by
 * the fields at `a_skip` and `b_skip`, and jumps back to `label`. */
#define NEXT_4x4(offset, a_skip, b_skip, label)                                        \
  FIELD(offset) "beqz %[a0], 5f\n\t addi %[a0], %[a0], -1\n\t"                        \
  "sw %[a0], " #offset "+%[plan]\n\t" SKIP_4x4("pa", a_skip) SKIP_4x4("pb", b_skip)    \
  "j " label "\n\t 5:\n\t"
/* A 4-byte step: the words of the 4 rows of a, then column by column. Each load is
 * used one instruction later where a register is free for it (the load-use stall of
 * RI5CY-class cores): b row 0 before a row 3, and `then` (loading the loop's end into
 * a0) after the last use of a0. */
#define STEP_4x4(then)                                                                 \
  LOAD_4x4("a0", "pa", "sa") LOAD_4x4("a1", "pa", "sa") LOAD_4x4("a2", "pa", "sa")     \
  LOAD_4x4("b", "pb", "sb") LOAD_4x4("a3", "pa", "back_a")                             \
  COLUMN_4x4(0) LOAD_4x4("b", "pb", "sb") COLUMN_4x4(1) LOAD_4x4("b", "pb", "sb")     \
  COLUMN_4x4(2) LOAD_4x4("b", "pb", "back_b") SDOT_4x4(0, 3) then SDOT_4x4(1, 3)       \
  SDOT_4x4(2, 3) SDOT_4x4(3, 3)
#define COLUMN_4x4(j) SDOT_4x4(0, j) SDOT_4x4(1, j) SDOT_4x4(2, j) SDOT_4x4(3, j)
/* rows x runs runs of 4-byte steps, two steps per branch (an odd count starts with the
 * second) */
#define LOOPS_4x4                                                                      \
  FIELD(20) "addi %[a0], %[a0], -1\n\t sw %[a0], 60+%[plan]\n\t"                       \
  "3:\n\t" FIELD(16) "addi %[a0], %[a0], -1\n\t sw %[a0], 56+%[plan]\n\t"              \
  "1:\n\t" FIELD(12) "add %[a0], %[pb], %[a0]\n\t sw %[a0], 64+%[plan]\n\t"            \
  FIELD(156) "bnez %[a0], 12f\n\t"                                                     \
  "2:\n\t" STEP_4x4("") "12:\n\t" STEP_4x4(FIELD(64)) "bne %[pb], %[a0], 2b\n\t"    \
  NEXT_4x4(56, 24, 28, "1b") NEXT_4x4(60, 32, 36, "3b")
/* y[i * ys + j] = quantize(acc[i][j]) (the 32-bit path), with a0..a3 = bound, scale,
 * round, shift and pa = y + i * ys; `clip` "cv.clipr" or, if no accumulator needs it,
 * "#" (a comment: one instruction less per output) */
#define QUANTIZE_4x4(clip, i, j) QUANTIZE_4x4_(clip, c##i##j, j)
#define QUANTIZE_4x4_(clip, c, j)                                                      \
  clip " %[" #c "], %[" #c "], %[a0]\n\t mul %[" #c "], %[" #c "], %[a1]\n\t"         \
  "add %[" #c "], %[" #c "], %[a2]\n\t sra %[" #c "], %[" #c "], %[a3]\n\t"            \
  "cv.clip %[" #c "], %[" #c "], 8\n\t sb %[" #c "], " #j "(%[pa])\n\t"
#define QUANTIZE_ROW_4x4(clip, i)                                                      \
  QUANTIZE_4x4(clip, i, 0) QUANTIZE_4x4(clip, i, 1) QUANTIZE_4x4(clip, i, 2)           \
  QUANTIZE_4x4(clip, i, 3)
#define QUANTIZE_ALL_4x4(clip)                                                         \
  "lw %[pa], 4+%[plan]\n\t lw %[pb], 8+%[plan]\n\t" QUANTIZE_ROW_4x4(clip, 0)          \
  "add %[pa], %[pa], %[pb]\n\t" QUANTIZE_ROW_4x4(clip, 1)                              \
  "add %[pa], %[pa], %[pb]\n\t" QUANTIZE_ROW_4x4(clip, 2)                              \
  "add %[pa], %[pa], %[pb]\n\t" QUANTIZE_ROW_4x4(clip, 3)
/* the plan's acc[i][j] = acc[i][j] */
#define STORE_4x4(i, j) "sw %[c" #i #j "], " #i "*16+" #j "*4+68+%[plan]\n\t"
#define STORE_ROW_4x4(i) STORE_4x4(i, 0) STORE_4x4(i, 1) STORE_4x4(i, 2) STORE_4x4(i, 3)
/* the quantized outputs, or if bound is 0 the accumulators into the plan, and out */
#define FINISH_4x4                                                                     \
  FIELD(40) "bnez %[a0], 7f\n\t" STORE_ROW_4x4(0) STORE_ROW_4x4(1) STORE_ROW_4x4(2)    \
  STORE_ROW_4x4(3) "j 9f\n\t"                                                          \
  "7:\n\t lw %[a1], 44+%[plan]\n\t lw %[a2], 48+%[plan]\n\t lw %[a3], 52+%[plan]\n\t"  \
  FIELD(152) "beqz %[a0], 10f\n\t" FIELD(40) QUANTIZE_ALL_4x4("cv.clipr")              \
  "j 11f\n\t 10:\n\t" QUANTIZE_ALL_4x4("#") "11:\n\t"
/* field at `offset` += field at `step` */
#define ADVANCE_4x4(offset, step)                                                      \
  FIELD(offset) "lw %[a1], " #step "+%[plan]\n\t add %[a0], %[a0], %[a1]\n\t"          \
  "sw %[a0], " #offset "+%[plan]\n\t"
/* on to the next block, if any: b, init and y advance */
#define BLOCKS_4x4                                                                     \
  FIELD(148) "beqz %[a0], 9f\n\t addi %[a0], %[a0], -1\n\t sw %[a0], 148+%[plan]\n\t"  \
  ADVANCE_4x4(136, 140) ADVANCE_4x4(0, 144)                                            \
  FIELD(4) "addi %[a0], %[a0], 4\n\t sw %[a0], 4+%[plan]\n\t j 8b\n\t 9:"

/* The blocks of the plan: from the block at plan->a, plan->b, y, init, acc[i][j] =
 * init[j] + the words of every run (the len % 4 last bytes are left), y[i * ys + j] =
 * quantize(acc[i][j]) (unless plan->bound is 0: then one block, plan->acc = acc). */
EDGE_INLINE void blocks_4x4(plan_t *plan, int32_t sa, int32_t sb) {
  const int32_t back_a = 4 - 3 * sa, back_b = 4 - 3 * sb;
  int32_t c[4][4], a0, a1, a2, a3, word; /* scratch */
  const int8_t *a, *b;
  __asm__ volatile(
      "8:\n\t lw %[pa], 132+%[plan]\n\t lw %[pb], 136+%[plan]\n\t"
      INIT_4x4 LOOPS_4x4 FINISH_4x4 BLOCKS_4x4
      : [c00] "=&r"(c[0][0]), [c01] "=&r"(c[0][1]), [c02] "=&r"(c[0][2]),
        [c03] "=&r"(c[0][3]), [c10] "=&r"(c[1][0]), [c11] "=&r"(c[1][1]),
        [c12] "=&r"(c[1][2]), [c13] "=&r"(c[1][3]), [c20] "=&r"(c[2][0]),
        [c21] "=&r"(c[2][1]), [c22] "=&r"(c[2][2]), [c23] "=&r"(c[2][3]),
        [c30] "=&r"(c[3][0]), [c31] "=&r"(c[3][1]), [c32] "=&r"(c[3][2]),
        [c33] "=&r"(c[3][3]), [pa] "=&r"(a), [pb] "=&r"(b), [a0] "=&r"(a0),
        [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b] "=&r"(word),
        [plan] "+m"(*plan)
      : [sa] "r"(sa), [sb] "r"(sb), [back_a] "r"(back_a), [back_b] "r"(back_b)
      : "memory");
}
#undef FIELD
#undef INIT_4x4
#undef COPY_4x4
#undef SDOT_4x4
#undef COLUMN_4x4
#undef LOAD_4x4
#undef SKIP_4x4
#undef NEXT_4x4
#undef STEP_4x4
#undef LOOPS_4x4
#undef QUANTIZE_4x4
#undef QUANTIZE_4x4_
#undef QUANTIZE_ROW_4x4
#undef QUANTIZE_ALL_4x4
#undef STORE_4x4
#undef STORE_ROW_4x4
#undef FINISH_4x4
#undef ADVANCE_4x4
#undef BLOCKS_4x4

/* The last len % 4 bytes of every run of an M x N block (after blocks_4x4) */
EDGE_INLINE void tails(int M, int N, const reduction_t *r, const int8_t *a, int32_t sa,
                       const int8_t *b, int32_t sb, int32_t acc[4][4]) {
  const int32_t words = r->len & ~3;
  for (int32_t row = 0; row < r->rows; row++)
    for (int32_t run = 0; run < r->runs; run++) {
      const int32_t a_at = row * r->a_row + run * r->a_run + words;
      const int32_t b_at = row * r->b_row + run * r->b_run + words;
      macs(M, N, a + a_at, sa, b + b_at, sb, r->len & 3, acc);
    }
}

/* The plan of a job's 4x4 blocks from column j0 (whole words in every run); 0 if the
 * asm does not apply. */
EDGE_INLINE int32_t plan_4x4(plan_t *plan, const job_t *job, const int8_t *a,
                             int32_t j0, int8_t *y, int32_t ys) {
  static const int32_t zeros[4] = {0, 0, 0, 0};
  const reduction_t *r = &job->r;
  if (r->len < 4 || r->runs <= 0 || r->rows <= 0) return 0;
  const int32_t bytes = r->len & ~3;
  plan->init = job->bias ? job->bias + j0 : zeros;
  plan->y = y + j0;
  plan->ys = ys;
  plan->bytes = bytes;
  plan->runs = r->runs;
  plan->rows = r->rows;
  plan->a_skip = r->a_run - bytes;
  plan->b_skip = r->b_run - bytes;
  plan->a_row = r->a_row - (r->runs - 1) * r->a_run - bytes;
  plan->b_row = r->b_row - (r->runs - 1) * r->b_run - bytes;
  plan->bound = r->len & 3 ? 0 : job->q.bound; /* else the tails come first */
  plan->scale = job->q.scale;
  plan->round = job->q.round;
  plan->shift = job->q.shift;
  plan->clip = job->q.clip;
  plan->odd = (bytes >> 2) & 1;
  plan->a = a;
  plan->b = job->b + j0 * job->sb;
  plan->b_step = 4 * job->sb;
  plan->init_step = job->bias ? 16 : 0;
  return 1;
}
#endif

/* The outputs (0, j), j0 <= j < j1: 1x4 blocks, then 1x1. */
EDGE_INLINE void one_row(const job_t *job, const int8_t *a, int32_t j0, int32_t j1,
                         int8_t *y) {
  int32_t j = j0;
  for (; j + 4 <= j1; j += 4) block(1, 4, job, a, 0, j, y, 0);
  for (; j < j1; j++) block(1, 1, job, a, 0, j, y, 0);
}

/* The outputs (i, j), i < 4, j0 <= j < j1: 4x4 blocks in assembly on CORE-V, else
 * row by row in 1x4 blocks (in C a 4x4 block spills: on RV32 without CORE-V some 20%
 * more instructions than 1x4 blocks); then 4x1 blocks for the last columns. */
EDGE_INLINE void four_rows(const job_t *job, const int8_t *a, int32_t sa, int32_t j0,
                           int32_t j1, int8_t *y, int32_t ys) {
  int32_t j = j0;
  const int32_t stop = j0 + ((j1 - j0) & ~3);
#if EDGE_INT8_ASM
  plan_t plan;
  if (j < stop && plan_4x4(&plan, job, a, j, y, ys))
    for (; j < stop; j += 4) {
      /* all the blocks in one asm statement, or one by one, finished in C */
      plan.blocks_left = plan.bound ? (stop - j) / 4 - 1 : 0;
      blocks_4x4(&plan, sa, job->sb);
      if (plan.bound) {
        j = stop;
        break;
      }
      tails(4, 4, &job->r, a, sa, plan.b, job->sb, plan.acc);
      finish(4, 4, &job->q, plan.acc, y + j, ys);
      plan.b += plan.b_step;
      plan.init += plan.init_step / 4;
    }
#endif
  for (int i = 0; j < stop && i < 4; i++) one_row(job, a + i * sa, j, stop, y + i * ys);
  for (j = stop; j < j1; j++) block(4, 1, job, a, sa, j, y, ys);
}

/* The outputs (i, j), i < rows (1 or 4), j0 <= j < j1: one instance for both kernels
 * (all the blocks are here). */
__attribute__((noinline)) static void outputs(const job_t *job, const int8_t *a,
                                              int32_t sa, int32_t rows, int32_t j0,
                                              int32_t j1, int8_t *y, int32_t ys) {
  if (rows == 4)
    four_rows(job, a, sa, j0, j1, y, ys);
  else
    one_row(job, a, j0, j1, y);
}

/* ----------------------------------------------------------------------------------
 * Kernels
 * ---------------------------------------------------------------------------------- */

void edge_linear_s8(const edge_linear_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y) {
  const int32_t n = p->n, k = p->k;
  const quant_t q = quant_init(p->scale, p->shift, bias, n, k);
  const job_t job = {{k, 1, 1, 0, 0, 0, 0}, w, k, bias, q};
  int32_t begin, end;
  edge_split(p->m * n, &begin, &end);
  for (int32_t i = begin; i < end;) {
    int32_t row = i / n, col = i - row * n;
    if (col == 0 && end - i >= 4 * n) { /* four whole rows */
      outputs(&job, x + row * k, k, 4, 0, n, y + row * n, n);
      i += 4 * n;
      continue;
    }
    /* the outputs [col, stop) of row `row` */
    int32_t stop = n - col > end - i ? col + (end - i) : n;
    outputs(&job, x + row * k, 0, 1, col, stop, y + row * n, 0);
    i += stop - col;
  }
  edge_barrier();
}

/* The kernel taps [*begin, *end) whose input position origin + tap * dilation lies in
 * [0, size). */
static inline void taps_inside(int32_t origin, int32_t dilation, int32_t taps,
                               int32_t size, int32_t *begin, int32_t *end) {
  int32_t first = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
  int32_t last = size - 1 - origin < 0 ? -1 : (size - 1 - origin) / dilation;
  *begin = first;
  *end = last + 1 < taps ? last + 1 : taps;
  if (*end < *begin) *end = *begin;
}

/* The taps [*begin, *end) of output row o (h = 1: along the height) or column o. */
static inline void line_taps(const edge_conv2d_s8_t *p, int32_t h, int32_t o,
                             int32_t *begin, int32_t *end) {
  const int32_t d = h ? 0 : 1, size = h ? p->height : p->width;
  taps_inside(o * p->stride[d] - p->padding[h ? 0 : 1], p->dilation[d],
              h ? p->kernel_h : p->kernel_w, size, begin, end);
}

/* Output rows (h = 1) or columns o and o + 3 have the same taps, and so the four
 * between (the tap range narrows monotonically towards either border). */
static inline int32_t same_taps(const edge_conv2d_s8_t *p, int32_t h, int32_t o) {
  int32_t begin0, end0, begin3, end3;
  line_taps(p, h, o, &begin0, &end0);
  line_taps(p, h, o + 3, &begin3, &end3);
  return begin0 == begin3 && end0 == end3;
}

/* The reduction of output pixel `pixel` as a job (right row j: output channel j's
 * weights from the pixel's first tap inside the input); returns the pixel's left row
 * (its first input byte). */
static const int8_t *conv_job(const edge_conv2d_s8_t *p, const int8_t *x, int32_t pixel,
                              job_t *job) {
  const int32_t cin = p->in_channels, dh = p->dilation[0], dw = p->dilation[1];
  int32_t ow = pixel % p->out_width, rest = pixel / p->out_width;
  int32_t oh = rest % p->out_height, b = rest / p->out_height;
  int32_t kh_begin, kh_end, kw_begin, kw_end;
  line_taps(p, 1, oh, &kh_begin, &kh_end);
  line_taps(p, 0, ow, &kw_begin, &kw_end);
  const int8_t *image = x + b * p->height * p->width * cin;
  reduction_t *r = &job->r;
  const int32_t kh_taps = kh_end - kh_begin, kw_taps = kw_end - kw_begin;
  if (kh_taps <= 0 || kw_taps <= 0) {
    *r = (reduction_t){0, 0, 0, 0, 0, 0, 0};
    return image;
  }
  if (dw == 1) /* one row of kh_taps runs: the kernel rows, kw_taps * cin bytes each */
    *r = (reduction_t){kw_taps * cin, kh_taps, 1, dh * p->width * cin,
                       p->kernel_w * cin, 0, 0};
  else /* kh_taps rows of kw_taps runs: the taps, cin bytes each */
    *r = (reduction_t){cin, kw_taps, kh_taps, dw * cin, cin, dh * p->width * cin,
                       p->kernel_w * cin};
  job->b += (kh_begin * p->kernel_w + kw_begin) * cin;
  const int32_t ih = oh * p->stride[0] - p->padding[0] + kh_begin * dh;
  const int32_t iw = ow * p->stride[1] - p->padding[1] + kw_begin * dw;
  return image + (ih * p->width + iw) * cin;
}

/* A convolution call */
typedef struct {
  const edge_conv2d_s8_t *p;
  const int8_t *x, *w;
  const int32_t *bias;
  int8_t *y;
  quant_t q;
} conv_t;

/* The channels [c0, c1) of output pixel `pixel` (count 1), or all the channels of it
 * and the next 3 pixels along its row (count 4, down 0) or down its column (down 1),
 * which have the same taps. */
static void conv_pixels(const conv_t *c, int32_t pixel, int32_t count, int32_t down,
                        int32_t c0, int32_t c1) {
  const edge_conv2d_s8_t *p = c->p;
  const int32_t cin = p->in_channels, cout = p->out_channels;
  const int32_t filter = p->kernel_h * p->kernel_w * cin; /* bytes between channels */
  job_t job = {{0, 0, 0, 0, 0, 0, 0}, c->w, filter, c->bias, c->q};
  const int8_t *a = conv_job(p, c->x, pixel, &job);
  /* four pixels' inputs and outputs are evenly spaced */
  const int32_t sa = down ? p->stride[0] * p->width * cin : p->stride[1] * cin;
  outputs(&job, a, sa, count, c0, c1, c->y + pixel * cout,
          down ? p->out_width * cout : cout);
}

/* All the outputs of output rows [oh0, oh1) of image b: 4 pixels along a row where
 * they have the same taps (the same columns in every row); the columns left over (at
 * the borders, and the last ones) 4 pixels down where 4 rows have the same taps; the
 * rest pixel by pixel. */
static void conv_rows(const conv_t *c, int32_t b, int32_t oh0, int32_t oh1) {
  const edge_conv2d_s8_t *p = c->p;
  const int32_t width = p->out_width, cout = p->out_channels;
  const int32_t first = (b * p->out_height + oh0) * width; /* pixel (oh0, 0) */
  for (int32_t ow = 0; ow < width;) {
    if (ow + 4 <= width && same_taps(p, 0, ow)) {
      for (int32_t oh = oh0; oh < oh1; oh++)
        conv_pixels(c, first + (oh - oh0) * width + ow, 4, 0, 0, cout);
      ow += 4;
      continue;
    }
    for (int32_t oh = oh0; oh < oh1;) {
      const int32_t pixel = first + (oh - oh0) * width + ow;
      const int32_t four = oh + 4 <= oh1 && same_taps(p, 1, oh);
      conv_pixels(c, pixel, four ? 4 : 1, 1, 0, cout);
      oh += four ? 4 : 1;
    }
    ow++;
  }
}

void edge_conv2d_s8(const edge_conv2d_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y) {
  const int32_t terms = p->kernel_h * p->kernel_w * p->in_channels;
  const conv_t c = {p, x, w, bias, y,
                    quant_init(p->scale, p->shift, bias, p->out_channels, terms)};
  const int32_t cout = p->out_channels, width = p->out_width;
  const int32_t row = width * cout; /* the outputs of an output row */
  int32_t begin, end;
  edge_split(p->batch * p->out_height * row, &begin, &end);
  for (int32_t i = begin; i < end;) {
    const int32_t image_row = i / row, oh = image_row % p->out_height;
    if (i == image_row * row && end - i >= row) { /* whole rows of one image */
      const int32_t rows = (end - i) / row, left = p->out_height - oh;
      const int32_t n = rows < left ? rows : left;
      conv_rows(&c, image_row / p->out_height, oh, oh + n);
      i += n * row;
      continue;
    }
    const int32_t pixel = i / cout, co = i - pixel * cout, ow = pixel % width;
    if (co == 0 && end - i >= 4 * cout && ow + 4 <= width && same_taps(p, 0, ow)) {
      conv_pixels(&c, pixel, 4, 0, 0, cout); /* four whole pixels along a row */
      i += 4 * cout;
      continue;
    }
    /* the channels [co, stop) of pixel `pixel` */
    const int32_t stop = cout - co > end - i ? co + (end - i) : cout;
    conv_pixels(&c, pixel, 1, 0, co, stop);
    i += stop - co;
  }
  edge_barrier();
}
