/* edge-opt runtime: convolution and pooling kernels (nn.conv2d, nn.conv_transpose2d,
 * the pools, and their train gradients), float32 NCHW. Semantics: ir/numerics.py and
 * ir/train_numerics.py.
 *
 * Every kernel computes each of its output elements entirely on one core, in a fixed
 * order; the backward kernels are gathers (each input-gradient element sums what reaches
 * it), never scatters. Outputs never alias inputs.
 */
#ifndef EDGE_KERNELS_CONV_POOL_H
#define EDGE_KERNELS_CONV_POOL_H

#include <stdint.h>

/* A 2-D convolution (cross-correlation): input X (n, c, h, w), weight
 * W (o, c / groups, kh, kw), output Y (n, o, oh, ow),
 *
 *   Y[b, k, y, x] = sum over q < c/groups, i < kh, j < kw of
 *       W[k, q, i, j] * X[b, g * c/groups + q, y*stride[0] + i*dilation[0] - padding[0],
 *                                           x*stride[1] + j*dilation[1] - padding[1]]
 *
 * with g = k / (o / groups) and X zero outside its bounds. `padding` is (top, left,
 * bottom, right); oh and ow are given rather than derived, so a kernel may compute (or
 * read) a crop of the full output: the kernels below use that for output_padding and for
 * the crops of the transposed convolution's gradients.
 *
 * The transposed convolution is the input gradient of a convolution, so its kernels take
 * the struct of THAT convolution: for nn.conv_transpose2d with input (n, C, H, W), weight
 * (C, O/groups, kh, kw) and output (n, O, OH, OW), the struct says c = O, h = OH, w = OW,
 * o = C, oh = H, ow = W (and the op's stride, padding, dilation, groups). */
typedef struct {
  int32_t n, c, h, w;
  int32_t o, kh, kw;
  int32_t oh, ow;
  int32_t stride[2];
  int32_t padding[4];
  int32_t dilation[2];
  int32_t groups;
} edge_conv2d_t;

/* nn.conv2d: y = Y(x, w) (+ bias[k], bias may be NULL). */
void edge_conv2d_f32(const edge_conv2d_t *p, const float *x, const float *w,
                     const float *bias, float *y);

/* train.conv2d_grad_input: dx (n, c, h, w) = dY/dX applied to dy (n, o, oh, ow); input
 * positions the convolution never reads get 0. */
void edge_conv2d_grad_input_f32(const edge_conv2d_t *p, const float *dy, const float *w,
                                float *dx);

/* train.conv2d_grad_weight: dw (o, c/groups, kh, kw) from dy (n, o, oh, ow) and x. */
void edge_conv2d_grad_weight_f32(const edge_conv2d_t *p, const float *dy, const float *x,
                                 float *dw);

/* nn.conv_transpose2d (p: the convolution whose input gradient it is, see above):
 * y (n, c, h, w) = dY/dX applied to x (n, o, oh, ow) (+ bias[channel], may be NULL). */
void edge_conv_transpose2d_f32(const edge_conv2d_t *p, const float *x, const float *w,
                               const float *bias, float *y);

/* train.conv_transpose2d_grad_input: dx (n, o, oh, ow) = the convolution of dy
 * (n, c, h, w) with w, cropped to oh x ow. */
void edge_conv_transpose2d_grad_input_f32(const edge_conv2d_t *p, const float *dy,
                                          const float *w, float *dx);

/* train.conv_transpose2d_grad_weight: dw (o, c/groups, kh, kw) from dy (n, c, h, w) and
 * the op's input x (n, o, oh, ow). */
void edge_conv_transpose2d_grad_weight_f32(const edge_conv2d_t *p, const float *dy,
                                           const float *x, float *dw);

/* A 2-D pooling window over x (n, c, h, w) giving (n, c, oh, ow): window (y, x) covers
 * rows y*stride[0] - padding[0] + i*dilation[0], i < kh (columns alike). oh and ow are
 * the op's output size (ceil_mode is already in them). For the average, the divisor is
 * the number of window positions inside the input, or with count_include_pad inside the
 * input plus its declared padding (never the extra ceil-mode rows), as PyTorch. */
typedef struct {
  int32_t n, c, h, w;
  int32_t oh, ow;
  int32_t kh, kw;
  int32_t stride[2];
  int32_t padding[4];
  int32_t dilation[2];
  int32_t count_include_pad;
} edge_pool2d_t;

/* nn.max_pool2d (padding never wins: it is -inf). */
void edge_max_pool2d_f32(const edge_pool2d_t *p, const float *x, float *y);

/* train.max_pool2d_with_indices: also the window-local position i*kw + j of each maximum
 * (the first on ties). */
void edge_max_pool2d_with_indices_f32(const edge_pool2d_t *p, const float *x, float *y,
                                      uint8_t *indices);

/* train.max_pool2d_grad: dx (n, c, h, w) sums the dy whose window's index names it. */
void edge_max_pool2d_grad_f32(const edge_pool2d_t *p, const float *dy,
                              const uint8_t *indices, float *dx);

/* nn.avg_pool2d (dilation must be 1). */
void edge_avg_pool2d_f32(const edge_pool2d_t *p, const float *x, float *y);

/* train.avg_pool2d_grad: dx (n, c, h, w) sums dy / divisor over the windows covering it. */
void edge_avg_pool2d_grad_f32(const edge_pool2d_t *p, const float *dy, float *dx);

/* nn.global_avg_pool: y[r] = mean of x[r*size .. r*size + size), r < rows. */
void edge_global_avg_pool_f32(int32_t rows, int32_t size, const float *x, float *y);

#endif /* EDGE_KERNELS_CONV_POOL_H */
