/* edge-opt runtime, private: the geometry of a convolution's windows and the split of
 * its work between the cores, shared by edge_kernels_conv_pool.c (direct loops and
 * per-tap products) and edge_kernels_conv_implicit.c (implicit GEMM). */
#ifndef EDGE_CONV_GEOMETRY_H
#define EDGE_CONV_GEOMETRY_H

#include "edge_runtime.h"

/* ceil(a / b) for b > 0 (C division truncates toward zero). */
static inline int32_t ceil_div(int32_t a, int32_t b) {
  int32_t q = a / b;
  return (a % b != 0 && a > 0) ? q + 1 : q;
}

/* The taps k in [*lo, *hi), k < taps, with 0 <= start + k * step < size. */
static inline void taps_inside(int32_t start, int32_t step, int32_t taps, int32_t size,
                               int32_t *lo, int32_t *hi) {
  int32_t first, last;
  if (step == 1) {
    first = start < 0 ? -start : 0;
    last = size - start;
  } else {
    first = start < 0 ? ceil_div(-start, step) : 0;
    last = ceil_div(size - start, step);
  }
  if (last > taps) last = taps;
  if (last < first) last = first;
  *lo = first;
  *hi = last;
}

/* The window index o < count whose tap `tap` (taps `dilation` apart, windows `stride`
 * apart, starting at -pad) lands on input coordinate `coordinate`, or -1. */
static inline int32_t window_at(int32_t coordinate, int32_t pad, int32_t tap,
                                int32_t dilation, int32_t stride, int32_t count) {
  int32_t t = coordinate + pad - tap * dilation;
  if (t < 0) return -1;
  if (stride > 1) {
    if (t % stride) return -1;
    t /= stride;
  }
  return t < count ? t : -1;
}

/* Output rows of `length` elements: the columns [*x0, *x1) of `row` that are in this
 * core's share [begin, end) of the flat output. */
static inline void row_share(int32_t row, int32_t length, int32_t begin, int32_t end,
                             int32_t *x0, int32_t *x1) {
  const int32_t first = row * length;
  *x0 = begin > first ? begin - first : 0;
  *x1 = end - first < length ? end - first : length;
}

/* Work units: (output slice, block of 4 rows of the products: the GEMM's register
 * blocks), slice-major, split between the cores: this core's units are [*u0, *u1).
 * A core's units of one slice are consecutive blocks, computed as one product. */
static inline void split_units(int32_t rows, int32_t slices, int32_t *u0, int32_t *u1) {
  edge_split((rows + 3) / 4 * slices, u0, u1);
}

/* Within units [u0, u1): the first slice and the rows [*r0, *r1) of slice `s`. */
static inline void slice_rows(int32_t s, int32_t u0, int32_t u1, int32_t rows, int32_t *r0,
                              int32_t *r1) {
  const int32_t blocks = (rows + 3) / 4;
  *r0 = s == u0 / blocks ? 4 * (u0 % blocks) : 0;
  *r1 = s == (u1 - 1) / blocks ? 4 * ((u1 - 1) % blocks + 1) : rows;
  if (*r1 > rows) *r1 = rows;
}

/* The slices of units [u0, u1) (none when empty). */
#define FOR_SLICES(s, u0, u1, rows)                                                    \
  for (int32_t s = (u0) / (((rows) + 3) / 4); (u0) < (u1) &&                           \
       s <= ((u1) - 1) / (((rows) + 3) / 4); s++)

/* Sets `count` elements of rows [r0, r1), `stride` apart, to value[r] (or 0). */
static inline void fill_rows(float *base, int32_t r0, int32_t r1, int32_t stride,
                             int32_t count, const float *value) {
  for (int32_t r = r0; r < r1; r++) {
    const float v = value ? value[r] : 0.0f;
    float *row = base + r * stride;
    for (int32_t e = 0; e < count; e++) row[e] = v;
  }
}

/* The geometry of a convolution as locals: channels per group cg/og, kernel kh x kw
 * (khw taps), input h x wd (hw), output oh x ow (ohw), strides, dilations. */
#define CONV_DIMS(p)                                                                   \
  const int32_t cg = (p)->c / (p)->groups, og = (p)->o / (p)->groups;                  \
  const int32_t kh = (p)->kh, kw = (p)->kw, khw = kh * kw;                             \
  const int32_t h = (p)->h, wd = (p)->w, hw = h * wd;                                  \
  const int32_t oh = (p)->oh, ow = (p)->ow, ohw = oh * ow;                             \
  const int32_t sh = (p)->stride[0], sw = (p)->stride[1];                              \
  const int32_t dh = (p)->dilation[0], dw = (p)->dilation[1]

/* edge_kernels_conv_implicit.c: the implicit-GEMM forms, where they apply. */
int edge_conv_implicit_forward_applies(const edge_conv2d_t *p);
void edge_conv_implicit_forward(const edge_conv2d_t *p, const float *x, const float *w,
                                const float *bias, float *y);
int edge_conv_implicit_transposed_applies(const edge_conv2d_t *p);
void edge_conv_implicit_transposed(const edge_conv2d_t *p, const float *dy, const float *w,
                                   const float *bias, float *dx);
int edge_conv_folded_weight_gradient_applies(const edge_conv2d_t *p);
void edge_conv_folded_weight_gradient(const edge_conv2d_t *p, const float *dy,
                                      const float *x, float *dw);

#endif /* EDGE_CONV_GEOMETRY_H */
