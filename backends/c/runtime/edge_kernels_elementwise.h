/* edge-opt runtime: element-wise kernels (nn activations and arithmetic with NumPy
 * broadcasting, the element-wise gradients of train). Outputs may alias inputs of the
 * same shape (they run in place). */
#ifndef EDGE_KERNELS_ELEMENTWISE_H
#define EDGE_KERNELS_ELEMENTWISE_H

#include <stdint.h>

/* y[i] = f(x[i]), i < n */
#define EDGE_UNARY(name) void edge_##name##_f32(int32_t n, const float *x, float *y);
EDGE_UNARY(relu)
EDGE_UNARY(sigmoid)
EDGE_UNARY(tanh)
EDGE_UNARY(silu)
EDGE_UNARY(hardswish)
EDGE_UNARY(erf)
EDGE_UNARY(sqrt)
EDGE_UNARY(exp)
EDGE_UNARY(log)
EDGE_UNARY(neg)
EDGE_UNARY(gelu)      /* exact (erf) form */
EDGE_UNARY(gelu_tanh) /* tanh approximation */
EDGE_UNARY(ceil)
EDGE_UNARY(floor)
EDGE_UNARY(round) /* halves to even */
#undef EDGE_UNARY

/* y[i] = f(x[i]) with the op's parameters (nn.clip: absent bounds are -inf / +inf). */
void edge_clip_f32(int32_t n, float min, float max, const float *x, float *y);
void edge_hardsigmoid_f32(int32_t n, float alpha, float beta, const float *x, float *y);
void edge_elu_f32(int32_t n, float alpha, const float *x, float *y);
void edge_leaky_relu_f32(int32_t n, float alpha, const float *x, float *y);

/* out = lhs (op) rhs with NumPy broadcasting: out has `shape` (rank <= EDGE_MAX_RANK,
 * dense), and the operands are read at element strides that are 0 along the axes they
 * are broadcast on. */
typedef struct {
  int32_t rank;
  int32_t shape[6];
  int32_t lhs_strides[6];
  int32_t rhs_strides[6];
} edge_broadcast_t;

#define EDGE_BINARY(name)                                                              \
  void edge_##name##_f32(const edge_broadcast_t *p, const float *lhs, const float *rhs, \
                         float *out);
EDGE_BINARY(add)
EDGE_BINARY(sub)
EDGE_BINARY(mul)
EDGE_BINARY(div)
EDGE_BINARY(pow)
#undef EDGE_BINARY

/* dx[i] = f'(saved[i]) * dy[i]; `saved` is the op's output (relu, sigmoid, tanh) or
 * input (silu, hardswish, erf, gelu), as the train dialect says. */
#define EDGE_GRAD(name)                                                                \
  void edge_##name##_grad_f32(int32_t n, const float *dy, const float *saved, float *dx);
EDGE_GRAD(relu)
EDGE_GRAD(sigmoid)
EDGE_GRAD(tanh)
EDGE_GRAD(silu)
EDGE_GRAD(hardswish)
EDGE_GRAD(erf)
EDGE_GRAD(gelu)
EDGE_GRAD(gelu_tanh)
#undef EDGE_GRAD

/* The same with the forward op's parameters; `saved` is the output (clip, hardsigmoid)
 * or the input (elu, leaky_relu). */
void edge_clip_grad_f32(int32_t n, float min, float max, const float *dy,
                        const float *saved, float *dx);
void edge_hardsigmoid_grad_f32(int32_t n, float alpha, const float *dy,
                               const float *saved, float *dx);
void edge_elu_grad_f32(int32_t n, float alpha, const float *dy, const float *saved,
                       float *dx);
void edge_leaky_relu_grad_f32(int32_t n, float alpha, const float *dy,
                              const float *saved, float *dx);

#endif /* EDGE_KERNELS_ELEMENTWISE_H */
