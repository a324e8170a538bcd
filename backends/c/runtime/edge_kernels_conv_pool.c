/* edge-opt runtime: convolution and pooling kernels (see edge_kernels_conv_pool.h).
 *
 * A convolution runs in the fastest of three forms that applies (`forward`,
 * `transposed`, `weight_gradient` below choose): an implicit GEMM
 * (edge_kernels_conv_implicit.c: the forward with a short contraction, the input
 * gradient at unit strides, the weight gradient with few taps x channels); sums of
 * per-tap matrix products (below, "Convolutions as sums of products"); direct loops for
 * depthwise and narrow groups. FLOP per executed RV32 instruction on one core
 * (bench/riscv_kernels.py): 16->16 channels 3x3 on 16x16 forward 0.77 (products), input
 * gradient 0.98 (implicit), weight gradient 0.87 (products); the direct loops 0.26-0.36.
 *
 * Work is split by output element (edge_split over the flat output). A forward kernel
 * walks its share row by row, with the window taps that fall inside the input computed
 * once per row (vertically) and per output (horizontally), so the inner loop over a
 * window row has no bounds tests. Backward kernels that PyTorch writes as scatters
 * (transposed convolution, pooling gradients) are gathers here: each input-gradient
 * element visits the taps (i, j) whose window reaches it, in the order i, j.
 */
#include "edge_conv_geometry.h"

/* ------------------------------------------------------------------------------------
 * Convolution
 * ------------------------------------------------------------------------------------ */

/* One output of the convolution: the sum over q < cg, rows i in [i0, i1) and taps j in
 * [j0, j1), in that order, of x * w. `xq` points at tap (i0, j0) of channel 0, `wq` at
 * W[k, 0, i0, j0]. */
static inline float conv_point(const float *xq, const float *wq, int32_t cg, int32_t hw,
                               int32_t khw, int32_t rows, int32_t row_step, int32_t kw,
                               int32_t taps, int32_t dw) {
  float acc = 0.0f;
  for (int32_t q = 0; q < cg; q++, xq += hw, wq += khw) {
    const float *xr = xq, *wr = wq;
    for (int32_t i = 0; i < rows; i++, xr += row_step, wr += kw) {
      const float *xp = xr;
      for (int32_t j = 0; j < taps; j++, xp += dw) acc += *xp * wr[j];
    }
  }
  return acc;
}

/* CONV_BLOCK adjacent outputs, `step` columns apart, whose windows have all kw taps
 * inside the input: conv_point's sums, in conv_point's order (so an output's bits do not
 * depend on which of the two computed it), sharing each weight load. The caller passes
 * step = 1 as a constant where it can, for immediate load offsets. */
#define CONV_BLOCK 4
static inline void conv_block(const float *xq, const float *wq, int32_t cg, int32_t hw,
                              int32_t khw, int32_t rows, int32_t row_step, int32_t kw,
                              int32_t dw, int32_t step, float out[CONV_BLOCK]) {
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  for (int32_t q = 0; q < cg; q++, xq += hw, wq += khw) {
    const float *xr = xq, *wr = wq;
    for (int32_t i = 0; i < rows; i++, xr += row_step, wr += kw) {
      const float *xp = xr;
      for (int32_t j = 0; j < kw; j++, xp += dw) {
        const float v = wr[j];
        a0 += xp[0] * v;
        a1 += xp[step] * v;
        a2 += xp[2 * step] * v;
        a3 += xp[3 * step] * v;
      }
    }
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
}

/* Y = conv(X, W) (+ bias), the oh x ow outputs the struct names. The columns whose
 * windows are inside the input along x go in groups of CONV_BLOCK from the first of them,
 * each computed by conv_block (whole, also where a core's share ends inside it: each
 * core stores its own columns); the others column by column. Which columns are blocked
 * depends on the geometry only, never on the split. */
static void conv_forward(const edge_conv2d_t *p, const float *x, const float *w,
                         const float *bias, float *y) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups;
  const int32_t kh = p->kh, kw = p->kw, khw = kh * kw;
  const int32_t h = p->h, wd = p->w, hw = h * wd;
  const int32_t sh = p->stride[0], sw = p->stride[1];
  const int32_t dh = p->dilation[0], dw = p->dilation[1];
  const int32_t ow = p->ow, row_step = dh * wd;
  /* the columns [inner0, inner1) whose windows have all kw taps inside the input */
  const int32_t reach = wd - 1 + p->padding[1] - (kw - 1) * dw;
  const int32_t inner0 = ceil_div(p->padding[1], sw);
  const int32_t inner1 = reach < 0 ? 0 : (reach / sw + 1 < ow ? reach / sw + 1 : ow);
  if (ow > 0) {
    int32_t begin, end;
    edge_split(p->n * p->o * p->oh * ow, &begin, &end);
    for (int32_t row = begin / ow; row * ow < end; row++) {
      int32_t x0, x1;
      row_share(row, ow, begin, end, &x0, &x1);
      const int32_t oy = row % p->oh, plane = row / p->oh;
      const int32_t k = plane % p->o, b = plane / p->o;
      const int32_t ys = oy * sh - p->padding[0];
      int32_t i0, i1;
      taps_inside(ys, dh, kh, h, &i0, &i1);
      const float add = bias ? bias[k] : 0.0f;
      float *yrow = y + row * ow;
      if (i0 == i1) { /* every window row is padding */
        for (int32_t ox = x0; ox < x1; ox++) yrow[ox] = bias ? 0.0f + add : 0.0f;
        continue;
      }
      /* channel 0 of k's group at row tap i0, column 0; W[k, 0, i0, 0] */
      const float *xg = x + (b * p->c + (k / og) * cg) * hw + (ys + i0 * dh) * wd;
      const float *wk = w + k * cg * khw + i0 * kw;
      for (int32_t ox = x0; ox < x1;) {
        const int32_t group = inner0 + (ox - inner0) / CONV_BLOCK * CONV_BLOCK;
        if (ox >= inner0 && group + CONV_BLOCK <= inner1) {
          const int32_t first = group * sw - p->padding[1];
          float out[CONV_BLOCK];
          if (sw == 1)
            conv_block(xg + first, wk, cg, hw, khw, i1 - i0, row_step, kw, dw, 1, out);
          else
            conv_block(xg + first, wk, cg, hw, khw, i1 - i0, row_step, kw, dw, sw, out);
          const int32_t stop = group + CONV_BLOCK < x1 ? group + CONV_BLOCK : x1;
          for (; ox < stop; ox++) yrow[ox] = bias ? out[ox - group] + add : out[ox - group];
        } else {
          const int32_t xs = ox * sw - p->padding[1];
          int32_t j0, j1;
          taps_inside(xs, dw, kw, wd, &j0, &j1);
          const float acc = j0 == j1 ? 0.0f
                                     : conv_point(xg + xs + j0 * dw, wk + j0, cg, hw, khw,
                                                  i1 - i0, row_step, kw, j1 - j0, dw);
          yrow[ox] = bias ? acc + add : acc;
          ox++;
        }
      }
    }
  }
  edge_barrier();
}

/* ------------------------------------------------------------------------------------
 * Convolutions as sums of products (the GEMM core of edge_kernels_linalg.c)
 *
 * For one output row oy and one weight tap (i, j), a convolution is a matrix product
 * over the channels: Y[k, oy, ox] += sum_q W[k, q, i, j] X[q, oy*sh + i*dh - pt,
 * ox*sw + j*dw - pl], over the columns ox whose input is inside the image (the others
 * read padding). So the forward is, per (oy, i, j), an (og x cg) . (cg x columns)
 * product accumulated into Y; the input gradient the transposed product scattered into
 * dX (rows yy = oy*sh + i*dh - pt, columns ox*sw + j*dw - pl); the weight gradient, per
 * (b, oy, i, j), an (og x columns) . (columns x cg) product accumulated into dW's tap.
 * No packing buffer: the products read the tensors in place through strides. Each core
 * owns whole output rows of the products (output channels; input channels for dX) in
 * blocks of 4, so no two cores write an element, and an element's sum runs in the same
 * order whatever the number of cores. Used where the products are not degenerate
 * (several channels on both sides); depthwise and narrow groups keep the direct loops.
 * ------------------------------------------------------------------------------------ */

static int use_products(int32_t rows, int32_t depth) { return rows >= 4 && depth >= 2; }

/* Slices: the output rows oy. */
static void conv_forward_products(const edge_conv2d_t *p, const float *x, const float *w,
                                  const float *bias, float *y) {
  CONV_DIMS(p);
  int32_t u0, u1;
  split_units(og, oh, &u0, &u1);
  for (int32_t b = 0; b < p->n; b++) {
    for (int32_t grp = 0; grp < p->groups; grp++) {
      float *yg = y + (b * p->o + grp * og) * ohw;
      const float *xg = x + (b * p->c + grp * cg) * hw;
      const float *wg = w + grp * og * cg * khw;
      FOR_SLICES(oy, u0, u1, og) {
        int32_t r0, r1;
        slice_rows(oy, u0, u1, og, &r0, &r1);
        fill_rows(yg + oy * ow, r0, r1, ohw, ow, bias ? bias + grp * og : NULL);
        const int32_t ys = oy * sh - p->padding[0];
        int32_t i0, i1;
        taps_inside(ys, dh, kh, h, &i0, &i1);
        if (i0 >= i1) continue;
        for (int32_t j = 0; j < kw; j++) { /* the tap rows i summed in registers (reps) */
          const int32_t xs = j * dw - p->padding[1];
          int32_t x0, x1;
          taps_inside(xs, sw, ow, wd, &x0, &x1);
          if (x0 >= x1) continue;
          const edge_gemm_t g = {wg + i0 * kw + j, xg + (ys + i0 * dh) * wd + xs + x0 * sw,
                                 NULL, yg + oy * ow + x0, x1 - x0, cg,
                                 cg * khw, khw, hw, sw, ohw, 1, 1, i1 - i0, kw, dh * wd};
          edge_gemm_rows_f32(&g, r0, r1);
        }
      }
    }
  }
  edge_barrier();
}

/* Slices: the input rows yy; a row gathers, for each tap row i, the output row oy
 * whose window reads it. */
static void conv_transposed_products(const edge_conv2d_t *p, const float *dy,
                                     const float *w, const float *bias, float *dx) {
  CONV_DIMS(p);
  int32_t u0, u1;
  split_units(cg, h, &u0, &u1);
  for (int32_t b = 0; b < p->n; b++) {
    for (int32_t grp = 0; grp < p->groups; grp++) {
      float *dxg = dx + (b * p->c + grp * cg) * hw;
      const float *dyg = dy + (b * p->o + grp * og) * ohw;
      const float *wg = w + grp * og * cg * khw;
      FOR_SLICES(yy, u0, u1, cg) {
        int32_t r0, r1;
        slice_rows(yy, u0, u1, cg, &r0, &r1);
        fill_rows(dxg + yy * wd, r0, r1, hw, wd, bias ? bias + grp * cg : NULL);
        for (int32_t i = 0; i < kh; i++) {
          const int32_t oy = window_at(yy, p->padding[0], i, dh, sh, oh);
          if (oy < 0) continue;
          for (int32_t j = 0; j < kw; j++) {
            const int32_t xs = j * dw - p->padding[1];
            int32_t x0, x1;
            taps_inside(xs, sw, ow, wd, &x0, &x1);
            if (x0 >= x1) continue;
            const edge_gemm_t g = {wg + i * kw + j, dyg + oy * ow + x0, NULL,
                                   dxg + yy * wd + xs + x0 * sw, x1 - x0, og,
                                   khw, cg * khw, ohw, 1, hw, sw, 1, 1, 0, 0};
            edge_gemm_rows_f32(&g, r0, r1);
          }
        }
      }
    }
  }
  edge_barrier();
}

/* Slices: the weight taps (i, j); each sums over the batch and the output rows. */
static void conv_weight_gradient_products(const edge_conv2d_t *p, const float *dy,
                                          const float *x, float *dw_out) {
  CONV_DIMS(p);
  int32_t u0, u1;
  split_units(og, khw, &u0, &u1);
  for (int32_t grp = 0; grp < p->groups; grp++) {
    float *dwg = dw_out + grp * og * cg * khw;
    FOR_SLICES(tap, u0, u1, og) {
      int32_t r0, r1;
      slice_rows(tap, u0, u1, og, &r0, &r1);
      const int32_t i = tap / kw, j = tap % kw;
      for (int32_t r = r0; r < r1; r++)
        for (int32_t q = 0; q < cg; q++) dwg[(r * cg + q) * khw + i * kw + j] = 0.0f;
      const int32_t xs = j * dw - p->padding[1];
      int32_t x0, x1;
      taps_inside(xs, sw, ow, wd, &x0, &x1);
      if (x0 >= x1) continue;
      const int32_t ys = i * dh - p->padding[0];
      int32_t y0, y1;
      taps_inside(ys, sh, oh, h, &y0, &y1);
      if (y0 >= y1) continue;
      for (int32_t b = 0; b < p->n; b++) { /* the rows summed in registers (reps) */
        const float *dyg = dy + (b * p->o + grp * og) * ohw;
        const float *xg = x + (b * p->c + grp * cg) * hw;
        const edge_gemm_t g = {dyg + y0 * ow + x0, xg + (y0 * sh + ys) * wd + xs + x0 * sw,
                               NULL, dwg + i * kw + j, cg, x1 - x0, ohw, 1, sw, hw,
                               cg * khw, khw, 1, y1 - y0, ow, sh * wd};
        edge_gemm_rows_f32(&g, r0, r1);
      }
    }
  }
  edge_barrier();
}

/* X-shaped result (n, c, h, w) of the transposed convolution of dY (n, o, oh, ow):
 * dX[b, ch, yy, xx] = sum of W[k, q, i, j] dY[b, k, oy, ox] over the taps whose window
 * (oy, ox) reads (yy, xx), k in ch's group (+ bias[ch]). */
static void conv_transposed(const edge_conv2d_t *p, const float *dy, const float *w,
                            const float *bias, float *dx) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups;
  const int32_t kh = p->kh, kw = p->kw, khw = kh * kw;
  const int32_t oh = p->oh, ow = p->ow, ohw = oh * ow;
  const int32_t sh = p->stride[0], sw = p->stride[1];
  const int32_t dh = p->dilation[0], dw = p->dilation[1];
  const int32_t weight_step = cg * khw; /* from W[k, q] to W[k + 1, q] */
  if (p->w > 0) {
    int32_t begin, end;
    edge_split(p->n * p->c * p->h * p->w, &begin, &end);
    for (int32_t row = begin / p->w; row * p->w < end; row++) {
      int32_t x0, x1;
      row_share(row, p->w, begin, end, &x0, &x1);
      const int32_t yy = row % p->h, plane = row / p->h;
      const int32_t ch = plane % p->c, b = plane / p->c;
      const int32_t g = ch / cg, q = ch % cg;
      const float *dyg = dy + (b * p->o + g * og) * ohw;
      const float *wg = w + (g * og * cg + q) * khw;
      float *dxrow = dx + row * p->w;
      for (int32_t xx = x0; xx < x1; xx++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < kh; i++) {
          const int32_t oy = window_at(yy, p->padding[0], i, dh, sh, oh);
          if (oy < 0) continue;
          for (int32_t j = 0; j < kw; j++) {
            const int32_t ox = window_at(xx, p->padding[1], j, dw, sw, ow);
            if (ox < 0) continue;
            const float *d = dyg + oy * ow + ox;
            const float *wt = wg + i * kw + j;
            for (int32_t k = 0; k < og; k++, d += ohw, wt += weight_step) acc += *d * *wt;
          }
        }
        dxrow[xx] = bias ? acc + bias[ch] : acc;
      }
    }
  }
  edge_barrier();
}

/* dW (o, c/groups, kh, kw) = sum over b, oy, ox of dY[b, k, oy, ox] X[b, ..., tap]. */
static void conv_weight_gradient(const edge_conv2d_t *p, const float *dy, const float *x,
                                 float *dw) {
  const int32_t cg = p->c / p->groups, og = p->o / p->groups;
  const int32_t kh = p->kh, kw = p->kw;
  const int32_t h = p->h, wd = p->w, hw = h * wd;
  const int32_t oh = p->oh, ow = p->ow, ohw = oh * ow;
  const int32_t sh = p->stride[0], sw = p->stride[1];
  int32_t begin, end;
  edge_split(p->o * cg * kh * kw, &begin, &end);
  for (int32_t e = begin; e < end; e++) {
    const int32_t j = e % kw, i = (e / kw) % kh, kq = e / (kw * kh);
    const int32_t q = kq % cg, k = kq / cg;
    const int32_t ys = i * p->dilation[0] - p->padding[0];
    const int32_t xs = j * p->dilation[1] - p->padding[1];
    int32_t y0, y1, x0, x1;
    taps_inside(ys, sh, oh, h, &y0, &y1);
    taps_inside(xs, sw, ow, wd, &x0, &x1);
    float acc = 0.0f;
    if (x0 < x1) {
      for (int32_t b = 0; b < p->n; b++) {
        const float *dyk = dy + (b * p->o + k) * ohw + x0;
        const float *xq = x + (b * p->c + (k / og) * cg + q) * hw + xs + x0 * sw;
        for (int32_t oy = y0; oy < y1; oy++) {
          const float *d = dyk + oy * ow;
          const float *xr = xq + (oy * sh + ys) * wd;
          for (int32_t t = 0; t < x1 - x0; t++, xr += sw) acc += d[t] * *xr;
        }
      }
    }
    dw[e] = acc;
  }
  edge_barrier();
}

/* The convolution's three products, by products where they are not degenerate. */
static void forward(const edge_conv2d_t *p, const float *x, const float *w,
                    const float *bias, float *y) {
  if (edge_conv_implicit_forward_applies(p))
    edge_conv_implicit_forward(p, x, w, bias, y);
  else if (use_products(p->o / p->groups, p->c / p->groups))
    conv_forward_products(p, x, w, bias, y);
  else
    conv_forward(p, x, w, bias, y);
}

static void transposed(const edge_conv2d_t *p, const float *dy, const float *w,
                       const float *bias, float *dx) {
  if (edge_conv_implicit_transposed_applies(p))
    edge_conv_implicit_transposed(p, dy, w, bias, dx);
  else if (use_products(p->c / p->groups, p->o / p->groups))
    conv_transposed_products(p, dy, w, bias, dx);
  else
    conv_transposed(p, dy, w, bias, dx);
}

static void weight_gradient(const edge_conv2d_t *p, const float *dy, const float *x,
                            float *dw) {
  if (edge_conv_folded_weight_gradient_applies(p))
    edge_conv_folded_weight_gradient(p, dy, x, dw);
  else if (use_products(p->o / p->groups, p->c / p->groups))
    conv_weight_gradient_products(p, dy, x, dw);
  else
    conv_weight_gradient(p, dy, x, dw);
}

void edge_conv2d_f32(const edge_conv2d_t *p, const float *x, const float *w,
                     const float *bias, float *y) {
  forward(p, x, w, bias, y);
}

void edge_conv2d_grad_input_f32(const edge_conv2d_t *p, const float *dy, const float *w,
                                float *dx) {
  transposed(p, dy, w, NULL, dx);
}

void edge_conv2d_grad_weight_f32(const edge_conv2d_t *p, const float *dy, const float *x,
                                 float *dw) {
  weight_gradient(p, dy, x, dw);
}

void edge_conv_transpose2d_f32(const edge_conv2d_t *p, const float *x, const float *w,
                               const float *bias, float *y) {
  transposed(p, x, w, bias, y);
}

void edge_conv_transpose2d_grad_input_f32(const edge_conv2d_t *p, const float *dy,
                                          const float *w, float *dx) {
  forward(p, dy, w, NULL, dx);
}

void edge_conv_transpose2d_grad_weight_f32(const edge_conv2d_t *p, const float *dy,
                                           const float *x, float *dw) {
  /* the op's input plays the convolution's output gradient, dy its input */
  weight_gradient(p, x, dy, dw);
}

/* ------------------------------------------------------------------------------------
 * Pooling
 * ------------------------------------------------------------------------------------ */

/* A 3x3 window inside the input at unit dilation: its maximum and first position, the
 * taps unrolled; returns 0 when a tap is NaN (the caller then takes the general loop,
 * whose NaN rule this one does not follow). */
static inline int max_3x3(const float *xr, int32_t wd, float *best, int32_t *at) {
  float b = xr[0];
  int32_t first = 0, nan = 0;
  for (int32_t t = 0; t < 9; t++) {
    const float v = xr[(t / 3) * wd + t % 3];
    nan |= v != v;
    if (v > b) {
      b = v;
      first = t;
    }
  }
  *best = b;
  *at = first;
  return !nan;
}

static void max_pool(const edge_pool2d_t *p, const float *x, float *y, uint8_t *indices) {
  const int32_t kh = p->kh, kw = p->kw, h = p->h, wd = p->w, hw = h * wd;
  const int32_t dh = p->dilation[0], dw = p->dilation[1];
  if (p->ow > 0) {
    int32_t begin, end;
    edge_split(p->n * p->c * p->oh * p->ow, &begin, &end);
    for (int32_t row = begin / p->ow; row * p->ow < end; row++) {
      int32_t x0, x1;
      row_share(row, p->ow, begin, end, &x0, &x1);
      const int32_t oy = row % p->oh;
      const float *xp = x + (row / p->oh) * hw;
      const int32_t ys = oy * p->stride[0] - p->padding[0];
      int32_t i0, i1;
      taps_inside(ys, dh, kh, h, &i0, &i1);
      for (int32_t ox = x0; ox < x1; ox++) {
        const int32_t xs = ox * p->stride[1] - p->padding[1];
        int32_t j0, j1;
        taps_inside(xs, dw, kw, wd, &j0, &j1);
        /* padding taps are -inf: they never win, but an all -inf window answers tap 0 */
        float best;
        int32_t at;
        if (!(kh == 3 && kw == 3 && dh == 1 && dw == 1 && i1 - i0 == 3 && j1 - j0 == 3 &&
              max_3x3(xp + ys * wd + xs, wd, &best, &at))) {
          best = -__builtin_inff();
          at = 0;
          for (int32_t i = i0; i < i1; i++) {
            const float *xr = xp + (ys + i * dh) * wd + xs + j0 * dw;
            for (int32_t j = j0; j < j1; j++, xr += dw) {
              const float v = *xr;
              /* the first maximum; a NaN wins and stays, as NumPy's max and argmax */
              if (v > best || (v != v && best == best)) {
                best = v;
                at = i * kw + j;
              }
            }
          }
        }
        y[row * p->ow + ox] = best;
        if (indices) indices[row * p->ow + ox] = (uint8_t)at;
      }
    }
  }
  edge_barrier();
}

void edge_max_pool2d_f32(const edge_pool2d_t *p, const float *x, float *y) {
  max_pool(p, x, y, NULL);
}

void edge_max_pool2d_with_indices_f32(const edge_pool2d_t *p, const float *x, float *y,
                                      uint8_t *indices) {
  max_pool(p, x, y, indices);
}

/* A scatter by plane: each core owns whole planes (no two cores write an element), and
 * each output adds its gradient to the input element its index names, in output order:
 * one division per output (the index's tap row), none per tap as a gather would do. */
void edge_max_pool2d_grad_f32(const edge_pool2d_t *p, const float *dy,
                              const uint8_t *indices, float *dx) {
  const int32_t kh = p->kh, kw = p->kw, oh = p->oh, ow = p->ow, ohw = oh * ow;
  const int32_t h = p->h, wd = p->w, hw = h * wd;
  const int32_t sh = p->stride[0], sw = p->stride[1];
  const int32_t dh = p->dilation[0], dwx = p->dilation[1];
  const int32_t taps = kh * kw;
  int32_t begin, end;
  edge_split(p->n * p->c, &begin, &end);
  for (int32_t plane = begin; plane < end; plane++) {
    float *dxp = dx + plane * hw;
    for (int32_t e = 0; e < hw; e++) dxp[e] = 0.0f;
    const float *dyp = dy + plane * ohw;
    const uint8_t *ip = indices + plane * ohw;
    for (int32_t oy = 0; oy < oh; oy++) {
      const int32_t ys = oy * sh - p->padding[0];
      for (int32_t ox = 0; ox < ow; ox++) {
        const int32_t t = ip[oy * ow + ox];
        if (t >= taps) continue;
        const int32_t i = t / kw, j = t - i * kw;
        const int32_t yy = ys + i * dh, xx = ox * sw - p->padding[1] + j * dwx;
        /* an index into the padding: its gradient is dropped */
        if ((uint32_t)yy < (uint32_t)h && (uint32_t)xx < (uint32_t)wd)
          dxp[yy * wd + xx] += dyp[oy * ow + ox];
      }
    }
  }
  edge_barrier();
}

/* The average's divisor along one axis for the window starting at `start`. */
static inline int32_t avg_extent(const edge_pool2d_t *p, int32_t start, int32_t taps,
                                 int32_t size, int32_t axis) {
  int32_t lo = 0, hi = size;
  if (p->count_include_pad) {
    lo = -p->padding[axis];
    hi = size + p->padding[axis + 2];
  }
  if (start > lo) lo = start;
  if (start + taps < hi) hi = start + taps;
  return hi - lo;
}

void edge_avg_pool2d_f32(const edge_pool2d_t *p, const float *x, float *y) {
  const int32_t kh = p->kh, kw = p->kw, h = p->h, wd = p->w, hw = h * wd;
  if (p->ow > 0) {
    int32_t begin, end;
    edge_split(p->n * p->c * p->oh * p->ow, &begin, &end);
    for (int32_t row = begin / p->ow; row * p->ow < end; row++) {
      int32_t x0, x1;
      row_share(row, p->ow, begin, end, &x0, &x1);
      const int32_t oy = row % p->oh;
      const float *xp = x + (row / p->oh) * hw;
      const int32_t ys = oy * p->stride[0] - p->padding[0];
      int32_t i0, i1;
      taps_inside(ys, 1, kh, h, &i0, &i1);
      const int32_t rows = avg_extent(p, ys, kh, h, 0);
      for (int32_t ox = x0; ox < x1; ox++) {
        const int32_t xs = ox * p->stride[1] - p->padding[1];
        int32_t j0, j1;
        taps_inside(xs, 1, kw, wd, &j0, &j1);
        float sum = 0.0f;
        for (int32_t i = i0; i < i1; i++) {
          const float *xr = xp + (ys + i) * wd + xs;
          for (int32_t j = j0; j < j1; j++) sum += xr[j];
        }
        y[row * p->ow + ox] = sum / (float)(rows * avg_extent(p, xs, kw, wd, 1));
      }
    }
  }
  edge_barrier();
}

void edge_avg_pool2d_grad_f32(const edge_pool2d_t *p, const float *dy, float *dx) {
  const int32_t kh = p->kh, kw = p->kw, oh = p->oh, ow = p->ow, ohw = oh * ow;
  const int32_t sh = p->stride[0], sw = p->stride[1];
  if (p->w > 0) {
    int32_t begin, end;
    edge_split(p->n * p->c * p->h * p->w, &begin, &end);
    for (int32_t row = begin / p->w; row * p->w < end; row++) {
      int32_t x0, x1;
      row_share(row, p->w, begin, end, &x0, &x1);
      const int32_t yy = row % p->h;
      const float *dyp = dy + (row / p->h) * ohw;
      for (int32_t xx = x0; xx < x1; xx++) {
        float acc = 0.0f;
        for (int32_t i = 0; i < kh; i++) {
          const int32_t oy = window_at(yy, p->padding[0], i, 1, sh, oh);
          if (oy < 0) continue;
          const int32_t rows = avg_extent(p, oy * sh - p->padding[0], kh, p->h, 0);
          for (int32_t j = 0; j < kw; j++) {
            const int32_t ox = window_at(xx, p->padding[1], j, 1, sw, ow);
            if (ox < 0) continue;
            const int32_t divisor = rows * avg_extent(p, ox * sw - p->padding[1], kw, p->w, 1);
            acc += dyp[oy * ow + ox] / (float)divisor;
          }
        }
        dx[row * p->w + xx] = acc;
      }
    }
  }
  edge_barrier();
}

void edge_global_avg_pool_f32(int32_t rows, int32_t size, const float *x, float *y) {
  int32_t begin, end;
  edge_split(rows, &begin, &end);
  for (int32_t r = begin; r < end; r++) {
    const float *xr = x + r * size;
    float sum = 0.0f;
    for (int32_t k = 0; k < size; k++) sum += xr[k];
    y[r] = sum / (float)size;
  }
  edge_barrier();
}
