/* edge-opt runtime: convolutions as implicit GEMMs (see edge_kernels_conv_pool.h for
 * the kernels' contracts, edge_kernels_conv_pool.c for where these forms are chosen).
 *
 * Nothing is copied: the products read the input through tables of the rows each tap
 * reads (edge_gemm_gather_rows_f32), and the weight gradient's blocks read the taps'
 * inputs in place. Instructions on one RV32 core (bench/riscv_kernels.py), FLOP per
 * executed instruction: 3->64 channels 3x3 on 32x32 forward 0.96, input gradient 0.99,
 * weight gradient 0.90 (0.39, 0.28 and 0.46 before, as per-tap products or direct
 * loops); 64->128 on 16x16 input gradient 1.02.
 */
#include "edge_conv_geometry.h"

/* Implicit GEMM: a convolution's output row as one product whose contraction runs over
 * the channels summed and the taps, with B's rows gathered from the input
 * (edge_gemm_gather_rows_f32): the taps that read inside the input, for the columns
 * where every tap column is inside (one product), and for each border column alone.
 * Nothing is copied; the tap tables are on the stack (TAPS_MAX entries). */
#define TAPS_MAX 49
#define ZERO_ROW 256
static const float zero_row[ZERO_ROW];

static int use_implicit(int32_t taps, int32_t rows) {
  return taps <= TAPS_MAX && rows >= 3;
}

/* The forward where its contraction is short (few input channels: a first layer);
 * longer ones run faster as per-tap products. */
int edge_conv_implicit_forward_applies(const edge_conv2d_t *p) {
  return use_implicit(p->kh * p->kw, p->o / p->groups) &&
         p->c / p->groups * p->kh * p->kw <= 64;
}

/* The input gradient at unit strides. */
int edge_conv_implicit_transposed_applies(const edge_conv2d_t *p) {
  return use_implicit(p->kh * p->kw, p->c / p->groups) && p->stride[0] == 1 &&
         p->stride[1] == 1;
}

/* The output columns [*x_lo, *x_hi) whose every tap reads inside the input. */
static void interior_columns(const edge_conv2d_t *p, int32_t *x_lo, int32_t *x_hi) {
  *x_lo = 0;
  *x_hi = p->ow;
  for (int32_t j = 0; j < p->kw; j++) {
    int32_t x0, x1;
    taps_inside(j * p->dilation[1] - p->padding[1], p->stride[1], p->ow, p->w, &x0, &x1);
    *x_lo = x0 > *x_lo ? x0 : *x_lo;
    *x_hi = x1 < *x_hi ? x1 : *x_hi;
  }
  if (*x_hi < *x_lo) *x_hi = *x_lo;
}

/* The columns of row oy in products: [x_lo, x_hi) as one, the others one by one. */
#define FOR_PRODUCT_COLUMNS(col, n, ow, x_lo, x_hi)                                    \
  for (int32_t col = 0, n = (x_lo) == 0 && (x_hi) > 0 ? (x_hi) : 1; col < (ow);          \
       col += n, n = col == (x_lo) && (x_hi) > (x_lo) ? (x_hi) - (x_lo) : 1)

/* The taps that read inside a `height` x `width` plane at `base`: tap (i, j) reads row
 * y0 + sign * i * dh and column x0 + sign * j * dw (sign -1: the input gradient reads
 * dY backwards). Each one's address in channel 0 and its index in the weights; returns
 * their number. */
static int32_t taps_reading(const edge_conv2d_t *p, const float *base, int32_t height,
                            int32_t width, int32_t y0, int32_t x0, int32_t sign,
                            const float **rows, int32_t *offsets) {
  int32_t t = 0;
  for (int32_t i = 0; i < p->kh; i++) {
    const int32_t yy = y0 + sign * i * p->dilation[0];
    if (yy < 0 || yy >= height) continue;
    for (int32_t j = 0; j < p->kw; j++) {
      const int32_t xx = x0 + sign * j * p->dilation[1];
      if (xx < 0 || xx >= width) continue;
      rows[t] = base + yy * width + xx;
      offsets[t++] = i * p->kw + j;
    }
  }
  return t;
}

/* The forward's taps for the output columns from column x of row oy. */
static int32_t forward_taps(const edge_conv2d_t *p, const float *xg, int32_t oy, int32_t x,
                            const float **rows, int32_t *offsets) {
  return taps_reading(p, xg, p->h, p->w, oy * p->stride[0] - p->padding[0],
                      x * p->stride[1] - p->padding[1], 1, rows, offsets);
}

/* Y[o, oy, x] = sum over q, i, j of W[o, q, i, j] X[q, yy_i, xx_j] (+ bias[o]). */
void edge_conv_implicit_forward(const edge_conv2d_t *p, const float *x, const float *w,
                                  const float *bias, float *y) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups, khw = p->kh * p->kw;
  const int32_t hw = p->h * p->w, oh = p->oh, ow = p->ow, ohw = oh * ow;
  const float *rows[TAPS_MAX];
  int32_t offsets[TAPS_MAX], u0, u1, x_lo, x_hi;
  interior_columns(p, &x_lo, &x_hi);
  split_units(og, oh, &u0, &u1);
  for (int32_t b = 0; b < p->n; b++) {
    for (int32_t grp = 0; grp < p->groups; grp++) {
      float *yg = y + (b * p->o + grp * og) * ohw;
      const float *xg = x + (b * p->c + grp * cg) * hw;
      edge_gemm_gather_t g = {w + grp * og * cg * khw, rows, offsets,
                              bias ? bias + grp * og : NULL, NULL, 0, cg, 0, cg * khw,
                              khw, hw, p->stride[1], ohw};
      FOR_SLICES(oy, u0, u1, og) {
        int32_t r0, r1;
        slice_rows(oy, u0, u1, og, &r0, &r1);
        FOR_PRODUCT_COLUMNS(col, n, ow, x_lo, x_hi) {
          g.taps = forward_taps(p, xg, oy, col, rows, offsets);
          g.c = yg + oy * ow + col;
          g.n = n;
          edge_gemm_gather_rows_f32(&g, r0, r1);
        }
      }
    }
  }
  edge_barrier();
}

/* The input gradient's taps for the input columns from column x of input row yy (unit
 * strides): the rows of dY they read. */
static int32_t transposed_taps(const edge_conv2d_t *p, const float *dyg, int32_t yy,
                               int32_t x, const float **rows, int32_t *offsets) {
  return taps_reading(p, dyg, p->oh, p->ow, yy + p->padding[0], x + p->padding[1], -1,
                      rows, offsets);
}

/* dX[q, yy, x] = sum over k, i, j of W[k, q, i, j] dY[k, yy + pad - i dh, x + pad - j dw]
 * (+ bias[q]), unit strides. */
void edge_conv_implicit_transposed(const edge_conv2d_t *p, const float *dy,
                                     const float *w, const float *bias, float *dx) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups, khw = p->kh * p->kw;
  const int32_t h = p->h, wd = p->w, hw = h * wd, ohw = p->oh * p->ow;
  const float *rows[TAPS_MAX];
  int32_t offsets[TAPS_MAX], u0, u1, x_lo = 0, x_hi = wd;
  for (int32_t j = 0; j < p->kw; j++) { /* the columns every tap column reads inside */
    const int32_t lo = j * p->dilation[1] - p->padding[1], hi = lo + p->ow;
    x_lo = lo > x_lo ? lo : x_lo;
    x_hi = hi < x_hi ? hi : x_hi;
  }
  if (x_hi < x_lo) x_hi = x_lo;
  split_units(cg, h, &u0, &u1);
  for (int32_t b = 0; b < p->n; b++) {
    for (int32_t grp = 0; grp < p->groups; grp++) {
      float *dxg = dx + (b * p->c + grp * cg) * hw;
      const float *dyg = dy + (b * p->o + grp * og) * ohw;
      edge_gemm_gather_t g = {w + grp * og * cg * khw, rows, offsets,
                              bias ? bias + grp * cg : NULL, NULL, 0, og, 0, khw,
                              cg * khw, ohw, 1, hw};
      FOR_SLICES(yy, u0, u1, cg) {
        int32_t r0, r1;
        slice_rows(yy, u0, u1, cg, &r0, &r1);
        FOR_PRODUCT_COLUMNS(col, n, wd, x_lo, x_hi) {
          g.taps = transposed_taps(p, dyg, yy, col, rows, offsets);
          g.c = dxg + yy * wd + col;
          g.n = n;
          edge_gemm_gather_rows_f32(&g, r0, r1);
        }
      }
    }
  }
  edge_barrier();
}

/* The weight gradient folds its taps into the columns where they are few. */
int edge_conv_folded_weight_gradient_applies(const edge_conv2d_t *p) {
  return p->c / p->groups * p->kh * p->kw <= 64 && p->o / p->groups >= 4 &&
         p->ow * p->stride[1] <= ZERO_ROW;
}

/* The weight gradient with the taps folded into the columns (few input channels): dW,
 * viewed as og x (cg khw), is dY (og x pixels) times X', whose column n = (q, i, j) holds
 * the input tap n reads at each output pixel. A block of 4 x 6 weights sums over the
 * batch and the output rows in registers; a row goes in segments of columns (the
 * columns every tap reads inside the input, then each border column alone), a tap
 * outside the input reading zeros. The block order of the sum is fixed, so the split
 * between cores does not change a bit. */
typedef struct {
  int32_t plane, row, col; /* q * hw, i * dh - pad top, j * dw - pad left */
} fold_tap_t;

/* acc[r][c] += sum over t < len of d[r][t * ds] x[c][t * xs[c]], c < cols (a
 * constant): t unrolled by two (each address advances once per two steps), a column at
 * a time as in the products. The addresses are scalars, not arrays, so that they stay
 * in registers across the empty asm that keeps the loads from being hoisted; constant
 * strides give immediate load offsets. */
EDGE_INLINE void weight_segment(float acc[4][6], const float *const d[4], const int32_t ds,
                                const float *const x[6], const int32_t xs[6], int32_t len,
                                const int32_t cols) {
  const float *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
  const int32_t s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3], s4 = xs[4], s5 = xs[5];
#define WEIGHT_COLUMN(c, t)                                                            \
  if (c < cols) {                                                                      \
    const float y = x##c[(t) * s##c];                                                   \
    acc[0][c] += a0 * y;                                                               \
    acc[1][c] += a1 * y;                                                               \
    acc[2][c] += a2 * y;                                                               \
    acc[3][c] += a3 * y;                                                               \
    __asm__ volatile("" ::: "memory"); /* no hoisted loads: they would spill */        \
  }
#define WEIGHT_STEP(t)                                                                 \
  do {                                                                                 \
    const float a0 = d0[(t) * ds], a1 = d1[(t) * ds], a2 = d2[(t) * ds];               \
    const float a3 = d3[(t) * ds];                                                     \
    WEIGHT_COLUMN(0, t) WEIGHT_COLUMN(1, t) WEIGHT_COLUMN(2, t)                         \
    WEIGHT_COLUMN(3, t) WEIGHT_COLUMN(4, t) WEIGHT_COLUMN(5, t)                         \
  } while (0)
  for (; len >= 2; len -= 2) {
    WEIGHT_STEP(0);
    WEIGHT_STEP(1);
    d0 += 2 * ds, d1 += 2 * ds, d2 += 2 * ds, d3 += 2 * ds;
    x0 += 2 * s0, x1 += 2 * s1, x2 += 2 * s2, x3 += 2 * s3, x4 += 2 * s4, x5 += 2 * s5;
  }
  if (len) WEIGHT_STEP(0);
#undef WEIGHT_STEP
#undef WEIGHT_COLUMN
}

/* The rows [*lo, *hi) of the output whose every tap row reads inside the input. */
static void interior_rows(const edge_conv2d_t *p, int32_t *lo, int32_t *hi) {
  *lo = 0;
  *hi = p->oh;
  for (int32_t i = 0; i < p->kh; i++) {
    int32_t y0, y1;
    taps_inside(i * p->dilation[0] - p->padding[0], p->stride[0], p->oh, p->h, &y0, &y1);
    *lo = y0 > *lo ? y0 : *lo;
    *hi = y1 < *hi ? y1 : *hi;
  }
  if (*hi < *lo) *hi = *lo;
}

/* The 4 x cols block at output channel o (rows past og repeat row o and are not
 * stored) and column n0 of dW, over the output pixels of batch element b: the rows
 * whose taps are all inside the input, in one segment each over the columns whose
 * taps are all inside; the border columns of those rows, one segment each down the
 * rows; the other rows column segment by column segment, a tap outside reading zeros
 * (the zero row, read with stride 0 down a column). */
EDGE_INLINE void weight_block(const edge_conv2d_t *p, const float *dyb, const float *xb,
                              const fold_tap_t *taps, int32_t o, int32_t og,
                              const int32_t interior[4], float acc[4][6],
                              const int32_t cols, const int32_t sw) {
  const int32_t h = p->h, wd = p->w, oh = p->oh, ow = p->ow, sh = p->stride[0];
  const int32_t x_lo = interior[0], x_hi = interior[1];
  const int32_t y_lo = interior[2], y_hi = interior[3];
  const int32_t along[6] = {sw, sw, sw, sw, sw, sw};
  for (int32_t oy = 0; oy < oh; oy++) {
    const int32_t inside = oy >= y_lo && oy < y_hi;
    for (int32_t s = inside ? x_lo : 0; s < ow;
         s = s == x_lo && x_hi > x_lo ? x_hi : s + 1) {
      const int32_t bulk = s == x_lo && x_hi > x_lo;
      if (inside && !bulk) break;
      const float *d[4];
      const float *x[6] = {zero_row, zero_row, zero_row, zero_row, zero_row, zero_row};
      int32_t xs[6] = {sw, sw, sw, sw, sw, sw};
      for (int32_t r = 0; r < 4; r++) /* rows past og repeat row o */
        d[r] = dyb + ((o + (o + r < og ? r : 0)) * oh + oy) * ow + s;
      for (int32_t c = 0; c < cols; c++) {
        const int32_t yy = oy * sh + taps[c].row, xx = s * sw + taps[c].col;
        const int32_t in = yy >= 0 && yy < h && xx >= 0 && xx < wd;
        x[c] = in ? xb + taps[c].plane + yy * wd + xx : zero_row;
        xs[c] = in ? sw : 0;
      }
      if (bulk)
        weight_segment(acc, d, 1, x, along, x_hi - x_lo, cols);
      else
        weight_segment(acc, d, 1, x, xs, 1, cols);
    }
  }
  for (int32_t s = 0; s < ow && y_hi > y_lo; s++) {
    if (s == x_lo && x_hi > x_lo) s = x_hi; /* the border columns only */
    if (s >= ow) break;
    const float *d[4], *x[6] = {zero_row, zero_row, zero_row, zero_row, zero_row, zero_row};
    int32_t xs[6] = {0, 0, 0, 0, 0, 0};
    for (int32_t r = 0; r < 4; r++)
      d[r] = dyb + ((o + (o + r < og ? r : 0)) * oh + y_lo) * ow + s;
    for (int32_t c = 0; c < cols; c++) {
      const int32_t xx = s * sw + taps[c].col;
      if (xx < 0 || xx >= wd) continue;
      x[c] = xb + taps[c].plane + (y_lo * sh + taps[c].row) * wd + xx;
      xs[c] = sh * wd;
    }
    weight_segment(acc, d, ow, x, xs, y_hi - y_lo, cols);
  }
}

/* A block of dW summed over the batch. */
EDGE_INLINE void weight_sum(const edge_conv2d_t *p, const float *dyg, const float *xg,
                            const fold_tap_t *taps, int32_t o, int32_t og,
                            const int32_t interior[4], float *out, int32_t n_stride,
                            const int32_t cols, const int32_t sw) {
  float acc[4][6] = {{0.0f}};
  for (int32_t b = 0; b < p->n; b++)
    weight_block(p, dyg + b * p->o * p->oh * p->ow, xg + b * p->c * p->h * p->w, taps, o,
                 og, interior, acc, cols, sw);
  for (int32_t r = 0; r < 4; r++)
    if (o + r < og)
      for (int32_t c = 0; c < cols; c++) out[r * n_stride + c] = acc[r][c];
}

void edge_conv_folded_weight_gradient(const edge_conv2d_t *p, const float *dy,
                                        const float *x, float *dw_out) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups, khw = p->kh * p->kw;
  const int32_t columns = cg * khw, blocks = (columns + 5) / 6, rows = (og + 3) / 4;
  int32_t interior[4], u0, u1;
  interior_columns(p, &interior[0], &interior[1]);
  interior_rows(p, &interior[2], &interior[3]);
  edge_split(p->groups * rows * blocks, &u0, &u1);
  for (int32_t u = u0; u < u1; u++) {
    const int32_t grp = u / (rows * blocks), o = u / blocks % rows * 4, n0 = u % blocks * 6;
    const int32_t cols = columns - n0 < 6 ? columns - n0 : 6;
    fold_tap_t taps[6];
    for (int32_t c = 0; c < cols; c++) {
      const int32_t n = n0 + c, q = n / khw, i = n % khw / p->kw, j = n % p->kw;
      taps[c] = (fold_tap_t){q * p->h * p->w, i * p->dilation[0] - p->padding[0],
                             j * p->dilation[1] - p->padding[1]};
    }
    const float *dyg = dy + grp * og * p->oh * p->ow, *xg = x + grp * cg * p->h * p->w;
    float *out = dw_out + (grp * og + o) * columns + n0;
    const int32_t sw = p->stride[1];
    switch (cols) { /* the block's width (and the common unit stride) as constants */
#define WEIGHT_SUM(n)                                                                  \
  case n:                                                                              \
    weight_sum(p, dyg, xg, taps, o, og, interior, out, columns, n, sw);                \
    break
      WEIGHT_SUM(1); WEIGHT_SUM(2); WEIGHT_SUM(3); WEIGHT_SUM(4); WEIGHT_SUM(5);
#undef WEIGHT_SUM
    case 6:
      if (sw == 1)
        weight_sum(p, dyg, xg, taps, o, og, interior, out, columns, 6, 1);
      else
        weight_sum(p, dyg, xg, taps, o, og, interior, out, columns, 6, sw);
      break;
    }
  }
  edge_barrier();
}

