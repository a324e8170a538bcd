/* edge-opt runtime: the scalar math the kernels use.
 *
 * Hosted builds use the C library (exactly rounded or nearly so). Freestanding targets
 * have no libm: there, portable single-precision implementations (range reduction and
 * minimax polynomials, a few ulp) stand in, and sqrt is the FPU's fsqrt.s (build with
 * -fno-math-errno).
 */
#ifndef EDGE_MATH_H
#define EDGE_MATH_H

#include <stdint.h>

#include "edge_platform.h"

#if !defined(EDGE_BARE) && !defined(EDGE_TARGET_PULP)
#include <math.h>
static inline float edge_expf(float x) { return expf(x); }
static inline float edge_logf(float x) { return logf(x); }
static inline float edge_tanhf(float x) { return tanhf(x); }
static inline float edge_erff(float x) { return erff(x); }
static inline float edge_sqrtf(float x) { return sqrtf(x); }
static inline float edge_powf(float x, float y) { return powf(x, y); }
#else

static inline float edge_sqrtf(float x) { return __builtin_sqrtf(x); }

static inline float edge_bits_to_float(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

static inline uint32_t edge_float_to_bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return u;
}

/* exp: x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 Taylor/minimax polynomial. */
static inline float edge_expf(float x) {
  if (x > 88.72f) return edge_bits_to_float(0x7f800000u);
  if (x < -103.97f) return 0.0f;
  float k = __builtin_floorf(x * 1.44269504f + 0.5f);
  float r = x - k * 0.693145752f - k * 1.42860677e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f +
            r * (0.00833345205f + r * 0.00138878031f)))));
  int32_t e = (int32_t)k;
  if (e < -126) return p * edge_bits_to_float((uint32_t)(e + 126 + 127) << 23) *
                       edge_bits_to_float(1u << 23);
  return p * edge_bits_to_float((uint32_t)(e + 127) << 23);
}

/* log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh((m-1)/(m+1)). */
static inline float edge_logf(float x) {
  if (!(x > 0.0f)) return x == 0.0f ? -edge_bits_to_float(0x7f800000u)
                                    : edge_bits_to_float(0x7fc00000u);
  uint32_t u = edge_float_to_bits(x);
  int32_t e = (int32_t)(u >> 23) - 127;
  float m = edge_bits_to_float((u & 0x007fffffu) | 0x3f800000u);
  if (m > 1.41421356f) { m *= 0.5f; e += 1; }
  float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 2.0f * s * (1.0f + s2 * (0.333333343f + s2 * (0.2f + s2 * (0.142857149f +
            s2 * 0.111111112f))));
  return p + (float)e * 0.693147182f;
}

static inline float edge_tanhf(float x) {
  if (x > 9.0f) return 1.0f;
  if (x < -9.0f) return -1.0f;
  float e = edge_expf(2.0f * x);
  return (e - 1.0f) / (e + 1.0f);
}

/* erf: Abramowitz & Stegun 7.1.26 refined (max abs error ~1.5e-7). */
static inline float edge_erff(float x) {
  float s = x < 0.0f ? -1.0f : 1.0f, a = x * s;
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t -
            0.284496736f) * t + 0.254829592f) * t * edge_expf(-a * a);
  return s * y;
}

static inline float edge_powf(float x, float y) {
  float n = __builtin_floorf(y);
  if (n == y && n >= 0.0f && n <= 16.0f) {
    float r = 1.0f;
    for (int i = 0; i < (int)n; i++) r *= x;
    return r;
  }
  return edge_expf(y * edge_logf(x));
}
#endif

#endif /* EDGE_MATH_H */
