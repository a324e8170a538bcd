/* edge-opt runtime: softmax and normalisation kernels (nn.softmax, nn.log_softmax,
 * nn.layer_norm, nn.batch_norm, nn.group_norm) and their gradients (train.*_grad*).
 *
 * Semantics: ir/numerics.py and ir/train_numerics.py. Statistics (max, mean, biased
 * variance) are recomputed by every kernel that needs them, row by row or group by
 * group, as the numerics do: no kernel keeps scratch memory. Arguments come in the
 * operand order of the kernel op: inputs, then outputs. Only edge_batch_norm_f32 runs in
 * place (y may be x); every other output is disjoint from the inputs. */
#ifndef EDGE_KERNELS_NORM_H
#define EDGE_KERNELS_NORM_H

#include <stdint.h>

/* A dense tensor seen as outer x size x inner around the softmax axis: the `size`
 * elements of line (o, i) are at o * size * inner + i + k * inner, k < size. The
 * kernels split the outer * inner lines between cores. */
typedef struct {
  int32_t outer;
  int32_t size;
  int32_t inner;
} edge_softmax_t;

/* y = exp(x - max) / sum(exp(x - max)) along the axis */
void edge_softmax_f32(const edge_softmax_t *p, const float *x, float *y);
/* y = (x - max) - log(sum(exp(x - max))) along the axis */
void edge_log_softmax_f32(const edge_softmax_t *p, const float *x, float *y);
/* dx = y * (dy - sum(dy * y)), y = the softmax's output */
void edge_softmax_grad_f32(const edge_softmax_t *p, const float *dy, const float *y,
                           float *dx);
/* dx = dy - exp(y) * sum(dy), y = the log-softmax's output */
void edge_log_softmax_grad_f32(const edge_softmax_t *p, const float *dy, const float *y,
                               float *dx);

/* Layer norm: `rows` rows (the leading axes) of `size` normalized elements (the
 * trailing axes from `axis`); scale, bias and the scale gradient have `size` elements.
 * The forward and grad_input kernels split rows, grad_scale splits the `size` columns
 * (each core recomputes the row statistics it needs). */
typedef struct {
  int32_t rows;
  int32_t size;
  float epsilon;
} edge_layer_norm_t;

void edge_layer_norm_f32(const edge_layer_norm_t *p, const float *x, const float *scale,
                         const float *bias, float *y);
void edge_layer_norm_grad_input_f32(const edge_layer_norm_t *p, const float *dy,
                                    const float *x, const float *scale, float *dx);
void edge_layer_norm_grad_scale_f32(const edge_layer_norm_t *p, const float *dy,
                                    const float *x, float *dscale);

/* Batch norm of a (batch, channels, spatial...) tensor, `spatial` = the product of the
 * axes after the channels (1 for rank 2). Inference (`training` = 0) normalizes with
 * the `mean` and `var` operands and splits the batch * channels planes; training
 * normalizes with the batch statistics of each channel (biased variance over all axes
 * but 1; mean and var are not read) and splits channels. edge_batch_norm_f32 may run
 * in place (y == x). */
typedef struct {
  int32_t batch;
  int32_t channels;
  int32_t spatial;
  float epsilon;
  int32_t training;
} edge_batch_norm_t;

void edge_batch_norm_f32(const edge_batch_norm_t *p, const float *x, const float *scale,
                         const float *bias, const float *mean, const float *var,
                         float *y);
void edge_batch_norm_grad_input_f32(const edge_batch_norm_t *p, const float *dy,
                                    const float *x, const float *scale,
                                    const float *mean, const float *var, float *dx);
void edge_batch_norm_grad_scale_f32(const edge_batch_norm_t *p, const float *dy,
                                    const float *x, const float *mean, const float *var,
                                    float *dscale);

/* Group norm of a (batch, channels, spatial...) tensor: the channels split into
 * `groups` groups of channels / groups consecutive channels; each (sample, group) block
 * of channels / groups * spatial contiguous elements is normalized on its own, then
 * scaled and shifted per channel. The forward and grad_input kernels split the
 * batch * groups blocks, grad_scale splits channels. */
typedef struct {
  int32_t batch;
  int32_t channels;
  int32_t groups;
  int32_t spatial;
  float epsilon;
} edge_group_norm_t;

void edge_group_norm_f32(const edge_group_norm_t *p, const float *x, const float *scale,
                         const float *bias, float *y);
void edge_group_norm_grad_input_f32(const edge_group_norm_t *p, const float *dy,
                                    const float *x, const float *scale, float *dx);
void edge_group_norm_grad_scale_f32(const edge_group_norm_t *p, const float *dy,
                                    const float *x, float *dscale);

#endif /* EDGE_KERNELS_NORM_H */
