/* edge-opt runtime: losses (train.cross_entropy, train.mse and their gradients) and
 * optimizer updates (train.sgd, train.sgd_momentum, train.adam).
 *
 * Semantics: ir/train_numerics.py (PyTorch's). Arguments come in the operand order of
 * the kernel op: inputs, then outputs. A loss is a sum computed by core 0 alone in a
 * fixed order (the other cores wait at the barrier). The optimizers run in place: the
 * new parameter may be the parameter's buffer, a new optimizer state its old state's
 * buffer (each element is read before it is written); the gradient and mse_grad's
 * target are never outputs. */
#ifndef EDGE_KERNELS_TRAIN_H
#define EDGE_KERNELS_TRAIN_H

#include <stdint.h>

#include "edge_kernels_conv_pool.h"
#include "edge_kernels_linalg.h"

/* Softmax cross-entropy of logits (rows, classes) against int32 labels (rows);
 * `mean` = 1 divides by the rows (reduction "mean"), 0 does not ("sum"). A label
 * outside [0, classes) gives NaN (loss, and its gradient row). */
typedef struct {
  int32_t rows;
  int32_t classes;
  int32_t mean;
} edge_cross_entropy_t;

/* loss (scalar) = -sum_r log_softmax(logits[r])[labels[r]] (/ rows) */
void edge_cross_entropy_f32(const edge_cross_entropy_t *p, const float *logits,
                            const int32_t *labels, float *loss);
/* grad (rows, classes) = (softmax(logits) - onehot(labels)) (/ rows) */
void edge_cross_entropy_grad_f32(const edge_cross_entropy_t *p, const float *logits,
                                 const int32_t *labels, float *grad);

/* Squared error over `count` elements; `mean` = 1 divides by the count. */
typedef struct {
  int32_t count;
  int32_t mean;
} edge_mse_t;

/* loss (scalar) = sum (prediction - target)^2 (/ count) */
void edge_mse_f32(const edge_mse_t *p, const float *prediction, const float *target,
                  float *loss);
/* grad = 2 (prediction - target) (/ count); grad may be prediction's buffer */
void edge_mse_grad_f32(const edge_mse_t *p, const float *prediction, const float *target,
                       float *grad);

/* g = grad + weight_decay * param; new_param = param - lr * g */
typedef struct {
  int32_t count;
  float lr;
  float weight_decay;
} edge_sgd_t;

void edge_sgd_f32(const edge_sgd_t *p, const float *param, const float *grad,
                  float *new_param);

/* Fused weight updates (train.linear_grad_weight_sgd, train.conv2d_grad_weight_sgd):
 * new_w = sgd(w, grad_weight(dy, x)) without a whole gradient buffer. The gradient is
 * computed `chunk_rows` output rows (features, channels) at a time into `workspace`
 * (chunk_rows rows of w), then SGD updates those rows. `s->count` is unused (each
 * chunk sets it). new_w may be w's buffer. The convolution takes groups = 1. */
void edge_linear_grad_weight_sgd_f32(const edge_linear_t *p, const edge_sgd_t *s,
                                     int32_t chunk_rows, const float *dy, const float *x,
                                     const float *w, float *new_w, float *workspace);
void edge_conv2d_grad_weight_sgd_f32(const edge_conv2d_t *p, const edge_sgd_t *s,
                                     int32_t chunk_rows, const float *dy, const float *x,
                                     const float *w, float *new_w, float *workspace);

/* g = grad + weight_decay * param; new_buffer = momentum * buffer + g;
 * new_param = param - lr * (nesterov ? g + momentum * new_buffer : new_buffer) */
typedef struct {
  int32_t count;
  int32_t nesterov;
  float lr;
  float momentum;
  float weight_decay;
} edge_sgd_momentum_t;

void edge_sgd_momentum_f32(const edge_sgd_momentum_t *p, const float *param,
                           const float *grad, const float *buffer, float *new_param,
                           float *new_buffer);

/* Adam at step t = *step (a rank-0 float buffer, 1-based):
 * g = grad + weight_decay * param; m' = beta1 m + (1 - beta1) g;
 * v' = beta2 v + (1 - beta2) g^2; c_i = 1 - beta_i^t;
 * new_param = param - (lr / c1) m' / (sqrt(v') / sqrt(c2) + epsilon).
 * 1 - beta_i and log(beta_i) come precomputed (in double, by the compiler): c_i =
 * -expm1(t log(beta_i)) is then accurate to a few ulp in float even when beta_i^t is
 * close to 1, where 1 - powf(beta_i, t) would lose most of its digits. */
typedef struct {
  int32_t count;
  float lr;
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float log_beta1;
  float log_beta2;
  float epsilon;
  float weight_decay;
} edge_adam_t;

void edge_adam_f32(const edge_adam_t *p, const float *param, const float *grad,
                   const float *exp_avg, const float *exp_avg_sq, const float *step,
                   float *new_param, float *new_exp_avg, float *new_exp_avg_sq);

#endif /* EDGE_KERNELS_TRAIN_H */
