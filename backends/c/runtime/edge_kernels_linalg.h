/* edge-opt runtime: matrix products (nn.linear, nn.matmul) and the linear gradients
 * (train.linear_grad_input, train.linear_grad_weight).
 *
 * Semantics: ir/numerics.py (linear, matmul) and ir/train_numerics.py. Every kernel is
 * one or more dense products C = A B (+ bias) written to a dense row-major output: the
 * cores split the output elements (edge_split), and each output element is a single
 * accumulation over k = 0, 1, ... in that order, plus the bias at the end, whatever core
 * and register block computes it, so results do not depend on the number of cores.
 * Arguments come in the operand order of the kernel op: inputs, then outputs. No output
 * may alias an input. */
#ifndef EDGE_KERNELS_LINALG_H
#define EDGE_KERNELS_LINALG_H

#include <stdint.h>

/* A linear layer on `rows` = the product of the leading axes of its input. */
typedef struct {
  int32_t rows;
  int32_t in_features;
  int32_t out_features;
} edge_linear_t;

/* y (rows, out) = x (rows, in) . w (out, in)^T [+ bias (out)]; bias may be NULL */
void edge_linear_f32(const edge_linear_t *p, const float *x, const float *w,
                     const float *bias, float *y);
/* dx (rows, in) = dy (rows, out) . w (out, in) */
void edge_linear_grad_input_f32(const edge_linear_t *p, const float *dy, const float *w,
                                float *dx);
/* dw (out, in) = dy (rows, out)^T . x (rows, in), summed over the rows */
void edge_linear_grad_weight_f32(const edge_linear_t *p, const float *dy, const float *x,
                                 float *dw);
/* Rows [first, first + count) of that dw, written to dw_rows (count, in): the
 * fused weight update's chunk (train.linear_grad_weight_sgd). */
void edge_linear_grad_weight_rows_f32(const edge_linear_t *p, const float *dy,
                                      const float *x, int32_t first, int32_t count,
                                      float *dw_rows);

/* A batched product out (batch..., m, n) = op(lhs) . op(rhs), op transposing the last
 * two axes of an operand when its flag is set. The batch axes (batch_rank <= 4, the
 * runtime's rank 6 minus the matrix axes) are the output's; an operand's matrix for
 * batch coordinates (b0, b1, ...) starts at element sum(b_i * *_batch_strides[i]),
 * the stride being 0 along the axes the operand is broadcast on. */
typedef struct {
  int32_t m;
  int32_t n;
  int32_t k;
  int32_t transpose_lhs;
  int32_t transpose_rhs;
  int32_t batch_rank;
  int32_t batch_shape[4];
  int32_t lhs_batch_strides[4];
  int32_t rhs_batch_strides[4];
} edge_matmul_t;

void edge_matmul_f32(const edge_matmul_t *p, const float *lhs, const float *rhs,
                     float *out);

/* The product core, for other kernels (the convolutions): C (m x n) = A B (+ bias), or
 * C += A B with `accumulate` (then no bias), on strided operands: A(i, k) =
 * a[i * sam + k * sak], B(k, j) = b[k * sbk + j * sbn], C(i, j) = c[i * scm + j * scn];
 * bias (n) or NULL. Unit strides make it faster (the usual layouts have sam or sak 1
 * and sbk or sbn 1). Each element is one accumulation over k = 0, 1, ... in order. */
typedef struct {
  const float *a;
  const float *b;
  const float *bias;
  float *c;
  int32_t n;
  int32_t k;
  int32_t sam, sak, sbk, sbn;
  int32_t scm, scn;
  int32_t accumulate;
  /* The contraction in `reps` runs of k steps (0 or 1: one), run r reading A and B
   * from a + r * rep_a and b + r * rep_b: a convolution's weight gradient sums over
   * output rows in registers. */
  int32_t reps, rep_a, rep_b;
} edge_gemm_t;

/* Rows [i0, i1) of C, every column, on the calling core (no split, no barrier). */
void edge_gemm_rows_f32(const edge_gemm_t *g, int32_t i0, int32_t i1);

/* A product whose B rows are gathered, over a two-level contraction (u < k, t < taps):
 * C (m x n, unit column stride, rows scm apart) = A B (+ bias[i] on row i; bias may be
 * NULL), with
 *   A(i, (u, t)) = a[i * sam + u * a_step + offsets[t]],
 *   B((u, t), j) = rows[t][u * b_step + j * sbn].
 * An implicit-GEMM convolution (edge_kernels_conv_pool.c): u runs over the channels
 * summed, t over the taps that read inside the input, rows[t] is the input row tap t
 * reads for the first column and offsets[t] the tap's index in the weights. */
typedef struct {
  const float *a;
  const float *const *rows;
  const int32_t *offsets;
  const float *bias;
  float *c;
  int32_t n;
  int32_t k, taps;
  int32_t sam, a_step, b_step, sbn, scm;
} edge_gemm_gather_t;

/* Rows [i0, i1) of C, every column, on the calling core (no split, no barrier). */
void edge_gemm_gather_rows_f32(const edge_gemm_gather_t *g, int32_t i0, int32_t i1);

#endif /* EDGE_KERNELS_LINALG_H */
