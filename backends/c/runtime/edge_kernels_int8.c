/* edge-opt runtime: int8 kernels (see edge_kernels_int8.h for the numerics). */
#include "edge_runtime.h"

typedef v4s v4s_word __attribute__((may_alias));

/* Four consecutive int8 as a v4s word. PULP / CORE-V cores load misaligned words in
 * hardware, so the RISC-V build reads the word as such (a cv.lw with post-increment in
 * the loops); elsewhere memcpy keeps the load defined at any alignment. */
static inline v4s load4(const int8_t *p) {
#if defined(__riscv)
  return *(const v4s_word *)(const void *)p;
#else
  v4s v;
  __builtin_memcpy(&v, p, 4);
  return v;
#endif
}

/* acc + a[k] * b[k] with wrapping int32 arithmetic (no signed overflow in C). */
static inline int32_t mac(int32_t acc, int8_t a, int8_t b) {
  return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)a * (int32_t)b));
}

/* acc + sum_{k < len} a[k] * b[k] */
static inline int32_t dot1(const int8_t *a, const int8_t *b, int32_t len, int32_t acc) {
  int32_t k = 0;
  for (; k + 4 <= len; k += 4)
    acc = __builtin_pulp_sdotsp4(load4(a + k), load4(b + k), acc);
  for (; k < len; k++) acc = mac(acc, a[k], b[k]);
  return acc;
}

/* acc[j] += sum_{k < len} a[k] * b[j * stride + k], j < 4: one load of `a` serves four
 * dot products. */
static inline void dot4(const int8_t *a, const int8_t *b, int32_t stride, int32_t len,
                        int32_t acc[4]) {
  const int8_t *b0 = b, *b1 = b + stride, *b2 = b + 2 * stride, *b3 = b + 3 * stride;
  int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
  int32_t k = 0;
  for (; k + 4 <= len; k += 4) {
    v4s va = load4(a + k);
    s0 = __builtin_pulp_sdotsp4(va, load4(b0 + k), s0);
    s1 = __builtin_pulp_sdotsp4(va, load4(b1 + k), s1);
    s2 = __builtin_pulp_sdotsp4(va, load4(b2 + k), s2);
    s3 = __builtin_pulp_sdotsp4(va, load4(b3 + k), s3);
  }
  for (; k < len; k++) {
    s0 = mac(s0, a[k], b0[k]);
    s1 = mac(s1, a[k], b1[k]);
    s2 = mac(s2, a[k], b2[k]);
    s3 = mac(s3, a[k], b3[k]);
  }
  acc[0] = s0;
  acc[1] = s1;
  acc[2] = s2;
  acc[3] = s3;
}

/* clip(floor((acc * scale + r) / 2^shift), -128, 127), r = 2^(shift-1) or 0 */
static inline int8_t requantize(int32_t acc, int32_t scale, int32_t shift) {
  int64_t v = (int64_t)acc * scale;
  if (shift > 0) v = (v + ((int64_t)1 << (shift - 1))) >> shift;
  return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

void edge_linear_s8(const edge_linear_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y) {
  const int32_t n = p->n, k = p->k;
  int32_t begin, end;
  edge_split(p->m * n, &begin, &end);
  for (int32_t i = begin; i < end;) {
    /* the outputs [col, stop) of row `row` */
    int32_t row = i / n, col = i - row * n;
    int32_t stop = n - col > end - i ? col + (end - i) : n;
    const int8_t *a = x + row * k;
    int8_t *out = y + row * n;
    int32_t j = col;
    for (; j + 4 <= stop; j += 4) {
      int32_t acc[4] = {0, 0, 0, 0};
      if (bias)
        for (int32_t t = 0; t < 4; t++) acc[t] = bias[j + t];
      dot4(a, w + j * k, k, k, acc);
      for (int32_t t = 0; t < 4; t++) out[j + t] = requantize(acc[t], p->scale, p->shift);
    }
    for (; j < stop; j++) {
      int32_t acc = dot1(a, w + j * k, k, bias ? bias[j] : 0);
      out[j] = requantize(acc, p->scale, p->shift);
    }
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

void edge_conv2d_s8(const edge_conv2d_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y) {
  const int32_t cin = p->in_channels, cout = p->out_channels;
  const int32_t kh_taps = p->kernel_h, kw_taps = p->kernel_w;
  const int32_t dh = p->dilation[0], dw = p->dilation[1];
  const int32_t filter = kh_taps * kw_taps * cin; /* bytes of one output channel's w */
  int32_t begin, end;
  edge_split(p->batch * p->out_height * p->out_width * cout, &begin, &end);
  for (int32_t i = begin; i < end;) {
    /* the channels [co, stop) of output pixel `pixel` */
    int32_t pixel = i / cout, co = i - pixel * cout;
    int32_t stop = cout - co > end - i ? co + (end - i) : cout;
    int32_t ow = pixel % p->out_width, rest = pixel / p->out_width;
    int32_t oh = rest % p->out_height, b = rest / p->out_height;
    int32_t ih0 = oh * p->stride[0] - p->padding[0];
    int32_t iw0 = ow * p->stride[1] - p->padding[1];
    int32_t kh_begin, kh_end, kw_begin, kw_end;
    taps_inside(ih0, dh, kh_taps, p->height, &kh_begin, &kh_end);
    taps_inside(iw0, dw, kw_taps, p->width, &kw_begin, &kw_end);
    /* dilation_w == 1: a kernel row is one run of (kw_end - kw_begin) * cin bytes;
     * otherwise one run of cin bytes per tap */
    const int32_t runs = kw_end <= kw_begin ? 0 : (dw == 1 ? 1 : kw_end - kw_begin);
    const int32_t run = dw == 1 ? (kw_end - kw_begin) * cin : cin;
    const int8_t *image = x + b * p->height * p->width * cin;
    int8_t *out = y + pixel * cout;
    int32_t c = co;
    for (; c < stop; c += 4) {
      const int32_t block = stop - c < 4 ? stop - c : 4;
      int32_t acc[4] = {0, 0, 0, 0};
      if (bias)
        for (int32_t t = 0; t < block; t++) acc[t] = bias[c + t];
      for (int32_t kh = kh_begin; kh < kh_end; kh++) {
        const int32_t row = (ih0 + kh * dh) * p->width + iw0; /* pixel of tap kw = 0 */
        const int8_t *taps = w + c * filter + kh * kw_taps * cin;
        for (int32_t r = 0; r < runs; r++) {
          const int32_t kw = kw_begin + r;
          const int8_t *a = image + (row + kw * dw) * cin, *f = taps + kw * cin;
          if (block == 4) {
            dot4(a, f, filter, run, acc);
          } else {
            for (int32_t t = 0; t < block; t++)
              acc[t] = dot1(a, f + t * filter, run, acc[t]);
          }
        }
      }
      for (int32_t t = 0; t < block; t++)
        out[c + t] = requantize(acc[t], p->scale, p->shift);
    }
    i += stop - co;
  }
  edge_barrier();
}
