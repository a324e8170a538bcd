/* edge-opt runtime: int8 kernels (the integer path).
 *
 * Numerics (exact and bit-reproducible; tests/test_c_kernels_int8.py has an independent
 * NumPy reference). Quantisation is symmetric: no zero points.
 *   acc = bias + sum_k x_k * w_k
 *       int8 x int8 products accumulated in int32, wrapping modulo 2^32 as the
 *       hardware's cv.sdotsp.b does (bias NULL counts as 0);
 *   y   = clip(floor((acc * scale + r) / 2^shift), -128, 127),  r = 2^(shift-1), or 0
 *       when shift == 0
 *       acc * scale is exact (64-bit), the division is an arithmetic right shift, so
 *       the rounding is to nearest with ties towards +infinity; 0 <= shift <= 62 and
 *       scale is any int32 (one scale and shift per tensor).
 *
 * The reduction runs over contiguous bytes of both operands, four at a time with
 * __builtin_pulp_sdotsp4 (cv.sdotsp.b), and a scalar tail for the last len % 4 bytes;
 * outputs are computed in register blocks (4x4: 4 rows of x, or 4 output pixels, by 4
 * rows of w, or 4 output channels), which changes only the order of the wrapping int32
 * additions, so no bit of a result. Rows need not be 4-byte aligned: on RISC-V the
 * words are loaded directly (PULP / CORE-V cores load misaligned words in hardware),
 * elsewhere with memcpy. Each kernel splits its output elements between the cores
 * (edge_split), computes each output entirely on one core, and ends with
 * edge_barrier().
 */
#ifndef EDGE_KERNELS_INT8_H
#define EDGE_KERNELS_INT8_H

#include <stdint.h>

/* y[m][n] = requantize(bias[n] + sum_k x[m][k] * w[n][k]):
 * x (m, k), w (n, k) (nn.linear's weight layout: the reduction is contiguous in both;
 * a matmul passes its right operand transposed), bias (n) or NULL, y (m, n). */
typedef struct {
  int32_t m;
  int32_t n;
  int32_t k;
  int32_t scale;
  int32_t shift;
} edge_linear_s8_t;

void edge_linear_s8(const edge_linear_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y);

/* 2-D convolution, NHWC, groups = 1:
 *   x (batch, height, width, in_channels), w (out_channels, kernel_h, kernel_w,
 *   in_channels), bias (out_channels) or NULL, y (batch, out_height, out_width,
 *   out_channels), zero padding (top, left, bottom, right), stride and dilation
 *   (h, w);
 *   y[b][oh][ow][co] = requantize(bias[co] + sum_{kh,kw,ci} x[b][ih][iw][ci] *
 *                      w[co][kh][kw][ci]),  ih = oh * stride_h - top + kh * dilation_h,
 *                      iw likewise, the sum over positions inside the input.
 * Layout choice: in NHWC the (kw, ci) part of the reduction is contiguous in x and in w
 * (with dilation_w == 1 the whole kernel row, clipped at the padding, is one run of
 * (kw_end - kw_begin) * in_channels bytes), so the inner loop is a long SIMD dot
 * product; a block of 4 output pixels with the same taps (along an output row, or
 * down an output column at the left and right borders) by 4 output channels shares
 * each loaded word of input between 4 channels and each word of weights between 4
 * pixels. */
typedef struct {
  int32_t batch;
  int32_t height;
  int32_t width;
  int32_t in_channels;
  int32_t out_channels;
  int32_t kernel_h;
  int32_t kernel_w;
  int32_t out_height;
  int32_t out_width;
  int32_t stride[2];
  int32_t padding[4];
  int32_t dilation[2];
  int32_t scale;
  int32_t shift;
} edge_conv2d_s8_t;

void edge_conv2d_s8(const edge_conv2d_s8_t *p, const int8_t *x, const int8_t *w,
                    const int32_t *bias, int8_t *y);

#endif /* EDGE_KERNELS_INT8_H */
