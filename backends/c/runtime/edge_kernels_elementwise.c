/* edge-opt runtime: element-wise kernels (see edge_kernels_elementwise.h). */
#include "edge_runtime.h"

static inline float sigmoid(float x) {
  /* exp of a non-positive number only: no overflow, accurate on both sides */
  float e = edge_expf(x >= 0.0f ? -x : x);
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static inline float gelu(float x) {
  return 0.5f * x * (1.0f + edge_erff(x * 0.70710678118654752f));
}

static inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + edge_tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}

static inline float hardswish(float x) {
  float c = x + 3.0f;
  c = c < 0.0f ? 0.0f : (c > 6.0f ? 6.0f : c);
  return x * c / 6.0f;
}

/* Rounding without libm (freestanding targets have none): |x| >= 2^23, inf and NaN
 * are already integers; below that the int32 conversion truncates exactly and x - floor
 * is exact. A zero result keeps the sign of x (ceil(-0.5) is -0), as libm's. */
static inline int is_small(float x) { return x > -8388608.0f && x < 8388608.0f; }

static inline float floor_(float x) {
  if (!is_small(x)) return x;
  float t = (float)(int32_t)x;
  return __builtin_copysignf(t > x ? t - 1.0f : t, x);
}

static inline float ceil_(float x) {
  if (!is_small(x)) return x;
  float t = (float)(int32_t)x;
  return __builtin_copysignf(t < x ? t + 1.0f : t, x);
}

/* Halves to even (ONNX Round, torch.round, NumPy). */
static inline float round_(float x) {
  if (!is_small(x)) return x;
  float f = floor_(x), d = x - f;
  if (d > 0.5f || (d == 0.5f && ((int32_t)f & 1))) f += 1.0f;
  return __builtin_copysignf(f, x);
}

static inline float clip(float x, float lo, float hi) {
  /* NaN fails both comparisons and stays NaN */
  return x < lo ? lo : (x > hi ? hi : x);
}

static inline float elu(float x, float alpha) {
  return x > 0.0f ? x : alpha * (edge_expf(x) - 1.0f);
}

#define UNARY(name, expr)                                                              \
  void edge_##name##_f32(int32_t n, const float *x, float *y) {                        \
    int32_t begin, end;                                                                \
    edge_split(n, &begin, &end);                                                       \
    for (int32_t i = begin; i < end; i++) {                                            \
      float v = x[i];                                                                  \
      y[i] = (expr);                                                                   \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

/* v < 0 ? +0 : v on the bits, without a branch: the negative numbers (sign set, from
 * the smallest denormal to -inf) become +0; -0 stays -0 and NaN stays NaN, as
 * np.maximum. */
void edge_relu_f32(int32_t n, const float *x, float *y) {
  int32_t begin, end;
  edge_split(n, &begin, &end);
  for (int32_t i = begin; i < end; i++) {
    uint32_t bits;
    __builtin_memcpy(&bits, x + i, sizeof bits);
    const uint32_t negative = bits - 0x80000001u <= 0x7F7FFFFFu;
    bits &= negative - 1u;
    __builtin_memcpy(y + i, &bits, sizeof bits);
  }
  edge_barrier();
}
UNARY(sigmoid, sigmoid(v))
UNARY(tanh, edge_tanhf(v))
UNARY(silu, v * sigmoid(v))
UNARY(hardswish, hardswish(v))
UNARY(erf, edge_erff(v))
UNARY(sqrt, edge_sqrtf(v))
UNARY(exp, edge_expf(v))
UNARY(log, edge_logf(v))
UNARY(neg, -v)
UNARY(gelu, gelu(v))
UNARY(gelu_tanh, gelu_tanh(v))

UNARY(ceil, ceil_(v))
UNARY(floor, floor_(v))
UNARY(round, round_(v))

/* Unary kernels with one or two float parameters a, b. */
#define UNARY_WITH(name, params, expr)                                                 \
  void edge_##name##_f32(int32_t n, EDGE_PARAMS_##params, const float *x, float *y) {  \
    int32_t begin, end;                                                                \
    edge_split(n, &begin, &end);                                                       \
    for (int32_t i = begin; i < end; i++) {                                            \
      float v = x[i];                                                                  \
      y[i] = (expr);                                                                   \
    }                                                                                  \
    edge_barrier();                                                                    \
  }
#define EDGE_PARAMS_1 float a
#define EDGE_PARAMS_2 float a, float b

UNARY_WITH(clip, 2, clip(v, a, b))
UNARY_WITH(hardsigmoid, 2, clip(a * v + b, 0.0f, 1.0f))
UNARY_WITH(elu, 1, elu(v, a))
UNARY_WITH(leaky_relu, 1, v > 0.0f ? v : v * a)

/* The element offsets of output element `index` in lhs and rhs. */
static inline void broadcast_offsets(const edge_broadcast_t *p, int32_t index,
                                     int32_t *lhs, int32_t *rhs) {
  *lhs = 0;
  *rhs = 0;
  for (int axis = p->rank - 1; axis >= 0; axis--) {
    int32_t coordinate = index % p->shape[axis];
    index /= p->shape[axis];
    *lhs += coordinate * p->lhs_strides[axis];
    *rhs += coordinate * p->rhs_strides[axis];
  }
}

/* out[j] = op(a[j * sa], b[j * sb]) for j < run: the unit and zero strides (a
 * broadcast operand) specialised, so that the loop is a load or two, the op and a store. */
#define BINARY_RUN(op, o, a, sa, b, sb, run)                                           \
  do {                                                                                 \
    if ((sa) == 1 && (sb) == 1)                                                        \
      for (int32_t j = 0; j < (run); j++) o[j] = op(a[j], b[j]);                       \
    else if ((sa) == 0 && (sb) == 1)                                                   \
      for (int32_t j = 0; j < (run); j++) o[j] = op(a[0], b[j]);                       \
    else if ((sa) == 1 && (sb) == 0)                                                   \
      for (int32_t j = 0; j < (run); j++) o[j] = op(a[j], b[0]);                       \
    else                                                                               \
      for (int32_t j = 0; j < (run); j++) o[j] = op(a[j * (sa)], b[j * (sb)]);         \
  } while (0)

/* A binary op with broadcasting: each core's share of the output goes in runs along
 * the innermost axis (BINARY_RUN), the coordinates of the outer axes carried once per
 * run. */
#define BINARY(name, expr)                                                             \
  static inline float name##_op(float a, float b) { return (expr); }                   \
  void edge_##name##_f32(const edge_broadcast_t *p, const float *lhs, const float *rhs, \
                         float *out) {                                                 \
    int32_t n = 1;                                                                     \
    for (int axis = 0; axis < p->rank; axis++) n *= p->shape[axis];                    \
    int32_t begin, end;                                                                \
    edge_split(n, &begin, &end);                                                       \
    if (begin < end) {                                                                 \
      int32_t l, r;                                                                    \
      broadcast_offsets(p, begin, &l, &r);                                             \
      int32_t coordinate[6] = {0};                                                     \
      int32_t rest = begin;                                                            \
      for (int axis = p->rank - 1; axis >= 0; axis--) {                                \
        coordinate[axis] = (int32_t)(rest % p->shape[axis]);                           \
        rest /= p->shape[axis];                                                        \
      }                                                                                \
      const int last = p->rank - 1;                                                    \
      const int32_t sa = last >= 0 ? p->lhs_strides[last] : 0;                         \
      const int32_t sb = last >= 0 ? p->rhs_strides[last] : 0;                         \
      for (int32_t i = begin; i < end;) {                                              \
        int32_t run = last >= 0 ? p->shape[last] - coordinate[last] : 1;               \
        if (run > end - i) run = end - i;                                              \
        const float *a = lhs + l, *b = rhs + r;                                        \
        float *o = out + i;                                                            \
        BINARY_RUN(name##_op, o, a, sa, b, sb, run);                                   \
        i += run;                                                                      \
        if (last < 0) break;                                                           \
        l += run * sa;                                                                 \
        r += run * sb;                                                                 \
        coordinate[last] += run;                                                       \
        for (int axis = last; axis > 0 && coordinate[axis] == p->shape[axis]; axis--) {  \
          l += p->lhs_strides[axis - 1] - p->lhs_strides[axis] * p->shape[axis];        \
          r += p->rhs_strides[axis - 1] - p->rhs_strides[axis] * p->shape[axis];        \
          coordinate[axis] = 0;                                                        \
          coordinate[axis - 1]++;                                                      \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

BINARY(add, a + b)
BINARY(sub, a - b)
BINARY(mul, a * b)
BINARY(div, a / b)
BINARY(pow, edge_powf(a, b))

static inline float silu_grad(float dy, float x) {
  float s = sigmoid(x);
  return dy * s * (1.0f + x * (1.0f - s));
}

static inline float hardswish_grad(float dy, float x) {
  return x <= -3.0f ? 0.0f : (x < 3.0f ? dy * (x / 3.0f + 0.5f) : dy);
}

static inline float gelu_grad(float dy, float x) {
  float cdf = 0.5f * (1.0f + edge_erff(x * 0.70710678118654752f));
  float pdf = edge_expf(-0.5f * x * x) * 0.39894228040143268f;
  return dy * (cdf + x * pdf);
}

static inline float gelu_tanh_grad(float dy, float x) {
  const float beta = 0.79788456080286536f, kappa = 0.044715f;
  float inner = edge_tanhf(beta * (x + kappa * x * x * x));
  float left = 0.5f * (1.0f + inner);
  float right = (1.0f - inner * inner) * beta * (1.0f + 3.0f * kappa * x * x);
  return dy * (left + 0.5f * x * right);
}

#define GRAD(name, expr)                                                               \
  void edge_##name##_grad_f32(int32_t n, const float *dy, const float *saved,          \
                              float *dx) {                                             \
    int32_t begin, end;                                                                \
    edge_split(n, &begin, &end);                                                       \
    for (int32_t i = begin; i < end; i++) {                                            \
      float g = dy[i], s = saved[i];                                                   \
      dx[i] = (expr);                                                                  \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

GRAD(relu, s > 0.0f ? g : 0.0f)
GRAD(sigmoid, g * s * (1.0f - s))
GRAD(tanh, g * (1.0f - s * s))
GRAD(silu, silu_grad(g, s))
GRAD(hardswish, hardswish_grad(g, s))
GRAD(erf, g * 1.12837916709551257f * edge_expf(-s * s))
GRAD(gelu, gelu_grad(g, s))
GRAD(gelu_tanh, gelu_tanh_grad(g, s))

/* Gradients with the parameters of their forward op. */
#define GRAD_WITH(name, params, expr)                                                  \
  void edge_##name##_grad_f32(int32_t n, EDGE_PARAMS_##params, const float *dy,        \
                              const float *saved, float *dx) {                         \
    int32_t begin, end;                                                                \
    edge_split(n, &begin, &end);                                                       \
    for (int32_t i = begin; i < end; i++) {                                            \
      float g = dy[i], s = saved[i];                                                   \
      dx[i] = (expr);                                                                  \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

GRAD_WITH(clip, 2, s > a && s < b ? g : 0.0f)
GRAD_WITH(hardsigmoid, 1, s > 0.0f && s < 1.0f ? g * a : 0.0f)
GRAD_WITH(elu, 1, s > 0.0f ? g : g * a * edge_expf(s))
GRAD_WITH(leaky_relu, 1, s > 0.0f ? g : g * a)

void edge_copy(const void *src, void *dst, size_t bytes) {
  int32_t begin, end;
  edge_split((int32_t)bytes, &begin, &end);
  const uint8_t *s = (const uint8_t *)src;
  uint8_t *d = (uint8_t *)dst;
  if (s != d)
    for (int32_t i = begin; i < end; i++) d[i] = s[i];
  edge_barrier();
}
