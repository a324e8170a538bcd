/* edge-opt runtime: matrix products (see edge_kernels_linalg.h).
 *
 * Every kernel is a product C = A B (+ bias) of strided operands, computed by
 * `gemm_range` over a contiguous range of C's elements: full rows in 4x6 register
 * blocks (24 accumulators, 10 loads per 24 multiply-adds) and 4x4 blocks (16
 * accumulators, 8 loads per 16, k unrolled by two), the rest in 1x4, 4x1 and 1x1
 * blocks. All blocks compute an element the same way (acc = its start: 0, bias[j], or
 * C(i, j) when accumulating; acc += A(i,k) B(k,j) for k = 0, 1, ...), so which block,
 * and which core, computes it does not change a bit of the result. The hot blocks are
 * specialised for the unit strides of the four layouts (the compiler sees those
 * strides as constants); on RISC-V with CORE-V the 4x6 and 4x4 blocks of a product
 * are one asm statement (edge_kernels_linalg_asm.h).
 *
 * Executed instructions on one RV32 core (zig/clang -O2, CORE-V flags; exact counts of
 * bench/riscv_kernels.py's emulator), FLOP per instruction: see docs/c-backend.md. */
#include "edge_runtime.h"

typedef edge_gemm_t gemm_t;

/* The 4x6 and 4x4 blocks in assembly on RISC-V with CORE-V; not at -O0 (the asm's
 * operands would not fit the registers) nor with EDGE_GEMM_NO_ASM (the tests compare
 * the two builds). */
#if defined(__riscv) && defined(__riscv_flen) && defined(__riscv_xcvmem) &&            \
    defined(__riscv_xcvalu) && defined(__OPTIMIZE__) && !defined(EDGE_GEMM_NO_ASM)
#define EDGE_GEMM_ASM 1
#else
#define EDGE_GEMM_ASM 0
#endif

/* The start of C(i, j)'s accumulator, at `c`: C(i, j) when accumulating, else bias[j]
 * or 0 (the bias is added first, as in the asm). */
EDGE_INLINE float start(const gemm_t *g, const float *c, int32_t j) {
  return g->accumulate ? *c : g->bias ? g->bias[j] : 0.0f;
}

EDGE_INLINE void kernel_4x4(const gemm_t *g, int32_t i, int32_t j, int32_t sam,
                            int32_t sak, int32_t sbk, int32_t sbn) {
  const float *a_row = g->a + i * sam, *b_col = g->b + j * sbn;
  float *c = g->c + i * g->scm + j * g->scn;
  const int32_t cs = g->scn, rs = g->scm;
#define START_4x4(r)                                                                   \
  float c##r##0 = start(g, c + r * rs, j), c##r##1 = start(g, c + r * rs + cs, j + 1);  \
  float c##r##2 = start(g, c + r * rs + 2 * cs, j + 2);                                \
  float c##r##3 = start(g, c + r * rs + 3 * cs, j + 3)
  START_4x4(0);
  START_4x4(1);
  START_4x4(2);
  START_4x4(3);
#undef START_4x4
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
#define STORE_4x4(r)                                                                   \
  do {                                                                                 \
    c[0] = c##r##0; c[cs] = c##r##1; c[2 * cs] = c##r##2; c[3 * cs] = c##r##3;         \
    c += rs;                                                                           \
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
  float *c = g->c + i * g->scm + j * g->scn;
  const int32_t cs = g->scn, rs = g->scm;
#define START_4x6(r)                                                                   \
  float c##r##0 = start(g, c + r * rs, j), c##r##1 = start(g, c + r * rs + cs, j + 1);  \
  float c##r##2 = start(g, c + r * rs + 2 * cs, j + 2);                                \
  float c##r##3 = start(g, c + r * rs + 3 * cs, j + 3);                                \
  float c##r##4 = start(g, c + r * rs + 4 * cs, j + 4);                                \
  float c##r##5 = start(g, c + r * rs + 5 * cs, j + 5)
  START_4x6(0);
  START_4x6(1);
  START_4x6(2);
  START_4x6(3);
#undef START_4x6
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
#define STORE_4x6(r)                                                                   \
  do {                                                                                 \
    c[0] = c##r##0; c[cs] = c##r##1; c[2 * cs] = c##r##2; c[3 * cs] = c##r##3;         \
    c[4 * cs] = c##r##4; c[5 * cs] = c##r##5;                                          \
    c += rs;                                                                           \
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
  float *c = g->c + i * g->scm + j * g->scn;
  const int32_t cs = g->scn;
  float c0 = start(g, c, j), c1 = start(g, c + cs, j + 1);
  float c2 = start(g, c + 2 * cs, j + 2), c3 = start(g, c + 3 * cs, j + 3);
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
  c[0] = c0;
  c[cs] = c1;
  c[2 * cs] = c2;
  c[3 * cs] = c3;
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

static void block_4x4(const gemm_t *g, int32_t i, int32_t j) {
  DISPATCH(kernel_4x4, g, i, j);
}

static void block_1x4(const gemm_t *g, int32_t i, int32_t j) {
  DISPATCH(kernel_1x4, g, i, j);
}

static void block_4x1(const gemm_t *g, int32_t i, int32_t j) {
  const float *a_row = g->a + i * g->sam, *b_col = g->b + j * g->sbn;
  const int32_t sam = g->sam, rs = g->scm;
  float *c = g->c + i * rs + j * g->scn;
  float c0 = start(g, c, j), c1 = start(g, c + rs, j);
  float c2 = start(g, c + 2 * rs, j), c3 = start(g, c + 3 * rs, j);
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
  c[0] = c0;
  c[rs] = c1;
  c[2 * rs] = c2;
  c[3 * rs] = c3;
}

static void block_1x1(const gemm_t *g, int32_t i, int32_t j) {
  const float *a_row = g->a + i * g->sam, *b_col = g->b + j * g->sbn;
  float *c = g->c + i * g->scm + j * g->scn;
  float c0 = start(g, c, j);
  for (int32_t rep = g->reps > 1 ? g->reps : 1; rep > 0;
       rep--, a_row += g->rep_a, b_col += g->rep_b) {
    const float *a = a_row, *b = b_col;
    for (int32_t k = g->k; k > 0; k--) {
      c0 += a[0] * b[0];
      a += g->sak;
      b += g->sbk;
    }
  }
  *c = c0;
}

#if EDGE_GEMM_ASM
#include "edge_kernels_linalg_asm.h"

/* 1, 2, 3 for the strides the bodies specialise (32, 64, 128 floats), else 0 */
EDGE_INLINE int32_t specialised(int32_t stride) {
  return stride == 32 ? 1 : stride == 64 ? 2 : stride == 128 ? 3 : 0;
}

/* The asm's body for g's strides; -1 where it does not apply (the C blocks) */
EDGE_INLINE int32_t asm_body(const gemm_t *g) {
  if (g->k < 1) return -1;
  if (g->sak == 1 && g->sbk == 1)
    return BODY_T + (g->sam == g->sbn ? specialised(g->sam) : 0);
  if (g->sbn != 1 || g->sak == 0) return -1; /* (pa0 counts the steps) */
  if (g->sak == 1) return BODY_N + specialised(g->sbk);
  if (g->sam != 1) return BODY_G;
  const int32_t spec = specialised(g->sak);
  return BODY_TN + spec + (spec && g->sbk == g->sak ? 3 : 0);
}

/* A width's entry, runs and pointers (a_adjust and b_adjust: the pointers' bias at a
 * run's start, bytes: those that use immediate offsets start e steps early) */
static void plan_width(const gemm_t *g, int32_t body, int32_t width, width_plan_t *w) {
  const int32_t family = body < BODY_N ? BODY_T : body < BODY_TN ? BODY_N
                         : body < BODY_G ? BODY_TN : BODY_G;
  int32_t spec = body - family; /* A^T.B: 1..3 sak, 4..6 sak = sbk */
  if (width == 4 && family == BODY_TN && spec <= 3) spec = 0;
  const int32_t stride = spec ? 32 << (spec - 1) % 3 : 0;
  const int32_t unroll = (family == BODY_TN && !spec) || family == BODY_G ? 4 : 8;
  const int32_t k = g->k, e = (unroll - k % unroll) % unroll;
  int32_t a_run = 4 * k * g->sak, b_run = 4 * k * g->sbk;
  w->e = e;
  w->a_adjust = w->b_adjust = 0;
  if (family == BODY_T || family == BODY_N) { /* A's rows along k: pa += 32 per trip */
    a_run = 4 * (k + e);
    w->a_adjust = -4 * e;
  }
  if (family == BODY_T) {
    b_run = a_run;
    w->b_adjust = -4 * e;
  }
  if (spec && family == BODY_TN) { /* A at (p - 4) 4 sak in a trip */
    a_run = 4 * (k + e) * stride;
    w->a_adjust = 4 * (4 - e) * stride;
  }
  if ((spec && family == BODY_N) || spec > 3) { /* B likewise */
    b_run = 4 * (k + e) * stride;
    w->b_adjust = 4 * (4 - e) * stride;
  }
  w->run = a_run;
  w->a_skip = 4 * g->rep_a - a_run;
  w->b_skip = 4 * g->rep_b - b_run;
  w->b_next = 4 * width * g->sbn;
}

/* The plan of the blocks of rows i, i + 1, ... (strips of 4): all but the blocks */
static void plan_strips(const gemm_t *g, int32_t body, int32_t i, plan_t *plan) {
  plan_width(g, body, 6, &plan->w[0]);
  plan_width(g, body, 4, &plan->w[1]);
  const int32_t a_bias = plan->w[0].a_adjust;
  plan->w[1].a_adjust -= a_bias;
  plan->w[0].a_adjust = 0;
  plan->a = (const float *)((const char *)(g->a + i * g->sam) + a_bias);
  /* A.B^T: B's columns biased as A's rows (the same at both widths) */
  plan->b = body < BODY_N ? (const float *)((const char *)g->b + plan->w[0].b_adjust) : g->b;
  plan->c = g->c + i * g->scm;
  plan->bias = g->bias;
  plan->mode = g->accumulate ? 2 : g->bias ? 1 : 0;
  plan->sam4 = 4 * g->sam;
  plan->sbn4 = (body > BODY_T && body < BODY_N ? 12 : 4) * g->sbn;
  plan->scm4 = 4 * g->scm;
  plan->a_strip = 16 * g->sam;
  plan->runs = g->reps > 1 ? g->reps - 1 : 0;
  plan->a_step = 4 * g->sak;
  plan->trip = 32 * (body < BODY_TN ? g->sbk : g->sak);
  plan->b_step = 4 * g->sbk;
  plan->layout = body;
}

EDGE_INLINE void asm_run(plan_t *plan) {
  if (plan->layout < BODY_N)
    asm_strips_t(plan);
  else
    asm_strips_rows(plan);
}

/* One block (4 x `width` at row i, column j) through `acc` (C strided between columns):
 * C's block copied in when accumulating, out after */
static void asm_block_via(const gemm_t *g, plan_t *plan, int32_t i, int32_t j,
                          int32_t width) {
  float acc[24];
  const float *a = plan->a, *b = plan->b;
  float *c = g->c + i * g->scm + j * g->scn;
  for (int32_t r = 0; r < 4; r++)
    for (int32_t col = 0; col < width; col++) acc[6 * r + col] = c[r * g->scm + col * g->scn];
  plan->b = (const float *)((const char *)b + 4 * j * g->sbn);
  plan->c = acc;
  plan->bias = g->bias ? g->bias + j : NULL;
  plan->strips = 1;
  plan->w6 = width == 6;
  plan->w4 = width == 4;
  asm_run(plan);
  plan->a = a;
  plan->b = b;
  for (int32_t r = 0; r < 4; r++)
    for (int32_t col = 0; col < width; col++) c[r * g->scm + col * g->scn] = acc[6 * r + col];
}

/* The w6 4x6 and w4 4x4 blocks of the `strips` strips of 4 rows from row i, in asm; 0
 * if it does not apply (then nothing is done). */
static int32_t asm_strips(const gemm_t *g, int32_t i, int32_t strips, int32_t w6,
                          int32_t w4) {
  const int32_t body = asm_body(g);
  if (body < 0) return 0;
  plan_t plan;
  plan_strips(g, body, i, &plan);
  if (g->scn == 1) {
    plan.strips = strips;
    plan.w6 = w6;
    plan.w4 = w4;
    asm_run(&plan);
    return 1;
  }
  plan.scm4 = 24; /* the rows of acc */
  for (int32_t s = 0; s < strips; s++, i += 4) {
    plan.a = (const float *)((const char *)plan.a + (s ? plan.a_strip : 0));
    int32_t j = 0;
    for (int32_t b = 0; b < w6; b++, j += 6) asm_block_via(g, &plan, i, j, 6);
    for (int32_t b = 0; b < w4; b++, j += 4) asm_block_via(g, &plan, i, j, 4);
  }
  return 1;
}
#endif

/* The w6 4x6 and w4 4x4 blocks of the `strips` strips of 4 rows from row i. Not
 * inlined: the asm clobbers every FP register, saved once per product. */
__attribute__((noinline)) static void wide_blocks(const gemm_t *g, int32_t i,
                                                  int32_t strips, int32_t w6, int32_t w4) {
#if EDGE_GEMM_ASM
  if (asm_strips(g, i, strips, w6, w4)) return;
#endif
  for (int32_t s = 0; s < strips; s++, i += 4) {
    int32_t j = 0;
    for (int32_t b = 0; b < w6; b++, j += 6) block_4x6(g, i, j);
    for (int32_t b = 0; b < w4; b++, j += 4) block_4x4(g, i, j);
  }
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
  const int32_t n = g->n, strips = (i1 - i0) / 4;
  int32_t w6 = n / 6 - (n % 6 == 2); /* 4x6 blocks per row of blocks */
  if (w6 < 0 || (n < 24 && (n - 6 * w6) % 4 > n % 4)) w6 = 0;
  const int32_t w4 = (n - 6 * w6) / 4, narrow = 6 * w6 + 4 * w4;
  if (strips > 0 && narrow > 0) wide_blocks(g, i0, strips, w6, w4);
  if (narrow < n)
    for (int32_t i = i0; i + 4 <= i1; i += 4)
      for (int32_t j = narrow; j < n; j++) block_4x1(g, i, j);
  for (int32_t i = i0 + 4 * strips; i < i1; i++) row_segment(g, i, 0, n);
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

void edge_linear_grad_weight_rows_f32(const edge_linear_t *p, const float *dy,
                                      const float *x, int32_t first, int32_t count,
                                      float *dw_rows) {
  int32_t in = p->in_features, out = p->out_features;
  gemm_t g = {dy + first, x, NULL, dw_rows, in, p->rows, 1, out, in, 1, in, 1, 0, 1, 0, 0};
  gemm(&g, count);
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
