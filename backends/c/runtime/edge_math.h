/* edge-opt runtime: the scalar math the kernels use.
 *
 * Hosted builds use the C library (exactly rounded or nearly so). Freestanding targets
 * have no libm: there, the portable single-precision implementations below (edge_soft_*:
 * range reduction and polynomials, a few ulp; see docs/c-backend.md for the measured
 * error table) stand in, and sqrt is the FPU's fsqrt.s (build with -fno-math-errno).
 * The edge_soft_* functions are compiled everywhere, so that host tests measure them
 * against libm over the whole float range (tests/math_ulp.c).
 *
 * Special values follow C99 Annex F: NaN in, NaN out (pow(x, 0) and pow(1, y) are 1);
 * exp overflows to inf and underflows through the subnormals to 0; log(0) = -inf,
 * log(inf) = inf, log(x < 0) = NaN; pow of a negative base is real only for an integer
 * exponent, with the sign of the base when the exponent is odd.
 */
#ifndef EDGE_MATH_H
#define EDGE_MATH_H

#include <stdint.h>

#include "edge_platform.h"

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

#define EDGE_INFF edge_bits_to_float(0x7f800000u)
#define EDGE_NANF edge_bits_to_float(0x7fc00000u)

/* exp: x = k ln2 + r, |r| <= ln2/2 (ln2 in two parts: k * hi is exact), exp(r) by a
 * degree-6 polynomial; 2^k applied in two steps where it leaves the normal range (k =
 * 128 just below overflow, k < -126 for subnormal results). */
static inline float edge_soft_expf(float x) {
  if (x != x) return x;
  if (x > 88.7228317f) return EDGE_INFF; /* the largest x whose exp is finite */
  if (x < -103.972084f) return 0.0f;     /* below half the smallest subnormal */
  float k = __builtin_floorf(x * 1.44269504f + 0.5f);
  float r = (x - k * 0.693145752f) - k * 1.42860677e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f +
            r * (0.00833345205f + r * 0.00138878031f)))));
  int32_t e = (int32_t)k;
  if (e > 127) return p * edge_bits_to_float(254u << 23) * 2.0f; /* 2^127 * 2 */
  if (e < -126) return p * edge_bits_to_float((uint32_t)(e + 126 + 127) << 23) *
                       edge_bits_to_float(1u << 23);
  return p * edge_bits_to_float((uint32_t)(e + 127) << 23);
}

/* log of a finite x > 0 as *hi + *lo, |*lo| small: x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^23 first), log(m) = 2 atanh(s),
 * s = (m-1)/(m+1); *hi = e ln2_hi (exact), *lo = log(m) + e ln2_lo. */
static inline void edge_soft_log_parts(float x, float *hi, float *lo) {
  int32_t e = 0;
  if (x < edge_bits_to_float(0x00800000u)) {
    x *= 8388608.0f; /* 2^23: a subnormal becomes normal */
    e = -23;
  }
  uint32_t u = edge_float_to_bits(x);
  e += (int32_t)(u >> 23) - 127;
  float m = edge_bits_to_float((u & 0x007fffffu) | 0x3f800000u);
  if (m > 1.41421356f) { m *= 0.5f; e += 1; }
  float f = m - 1.0f;
  float s = f / (m + 1.0f), s2 = s * s;
  /* 2 atanh(s) = f - f s + s^3 (2/3 + 2/5 s^2 + ...): f exact, the rest small */
  float tail = s * s2 * (0.666666687f + s2 * (0.400000006f + s2 * (0.285714298f +
               s2 * 0.222222224f)));
  float log_m = f - (s * f - tail);
  float k = (float)e;
  *hi = k * 0.693145752f;
  *lo = log_m + k * 1.42860677e-06f;
}

static inline float edge_soft_logf(float x) {
  if (!(x > 0.0f)) return x == 0.0f ? -EDGE_INFF : EDGE_NANF;
  if (x == EDGE_INFF) return x;
  float hi, lo;
  edge_soft_log_parts(x, &hi, &lo);
  return hi + lo;
}

/* tanh: an odd series near 0 (no cancellation), (e^2x - 1)/(e^2x + 1) elsewhere, +-1
 * where that rounds to 1. */
static inline float edge_soft_tanhf(float x) {
  float a = x < 0.0f ? -x : x;
  if (a > 9.1f) return x < 0.0f ? -1.0f : 1.0f;
  if (a < 0.55f) {
    if (x == 0.0f) return x; /* keeps the sign of zero */
    float z = x * x;
    return x + x * z * (-0.333333343f + z * (0.13333334f + z * (-0.0539682545f +
           z * (0.0218694881f + z * (-0.00886323931f + z * (0.00359212966f +
           z * (-0.00145583438f + z * 0.000590027815f)))))));
  }
  float e = edge_soft_expf(2.0f * x);
  return (e - 1.0f) / (e + 1.0f);
}

/* erf: the Maclaurin series below 0.5 (no absolute-error floor near 0), Abramowitz &
 * Stegun 7.1.26 above (absolute error ~1.5e-7 on values >= 0.52). */
static inline float edge_soft_erff(float x) {
  float s = x < 0.0f ? -1.0f : 1.0f, a = x * s;
  if (x != x) return x;
  if (a < 0.5f) {
    float z = x * x;
    return x * (1.12837917f + z * (-0.376126389f + z * (0.112837917f +
           z * (-0.0268661706f + z * (0.00522397762f + z * (-0.000854832702f +
           z * 0.000120553447f))))));
  }
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t -
            0.284496736f) * t + 0.254829592f) * t * edge_soft_expf(-a * a);
  return s * y;
}

static inline int edge_is_integer(float y) { return __builtin_floorf(y) == y; }

/* An integer y is odd iff y/2 is not an integer (exact: |y| >= 2^24 is even). */
static inline int edge_is_odd_integer(float y) {
  return edge_is_integer(y) && !edge_is_integer(y * 0.5f);
}

/* pow: C99 Annex F special cases; integer exponents up to 16 by repeated
 * multiplication while the product stays normal; otherwise exp(y log|x|), with the sign
 * of x for an odd integer y, y log|x| carried in two parts. */
static inline float edge_soft_powf(float x, float y) {
  if (y == 0.0f || x == 1.0f) return 1.0f;
  if (x != x || y != y) return x + y;
  float ax = x < 0.0f ? -x : x, ay = y < 0.0f ? -y : y;
  float sign = (edge_float_to_bits(x) >> 31) && edge_is_odd_integer(y) ? -1.0f : 1.0f;
  if (ay == EDGE_INFF) {
    if (ax == 1.0f) return 1.0f;
    return (ax > 1.0f) == (y > 0.0f) ? EDGE_INFF : 0.0f;
  }
  if (ax == 0.0f || ax == EDGE_INFF) return sign * ((ax == 0.0f) == (y < 0.0f) ? EDGE_INFF
                                                                               : 0.0f);
  if (!edge_is_integer(y)) {
    if (x < 0.0f) return EDGE_NANF;
  } else if (ay <= 16.0f) {
    float r = 1.0f;
    for (int i = 0; i < (int)ay; i++) r *= x;
    float ar = r < 0.0f ? -r : r;
    /* the product left the normal range: its reciprocal or value would lose it */
    if (ar != EDGE_INFF && ar >= edge_bits_to_float(0x00800000u))
      return y < 0.0f ? 1.0f / r : r;
  }
  /* y log|x| = t + dt exactly enough: the product's rounding error by a fused
   * multiply-add (fmadd.s on RV32F), the log's low part scaled */
  float hi, lo;
  edge_soft_log_parts(ax, &hi, &lo);
  float t = y * hi;
  float dt = __builtin_fmaf(y, hi, -t) + y * lo;
  float sum = t + dt;
  float rounding = dt - (sum - t);
  if (sum > 88.0f || sum < -87.0f) {
    /* near overflow or underflow the correction decides: exp(sum / 2) twice, so
     * that no step leaves the range before the result does */
    float half = edge_soft_expf(0.5f * sum);
    return sign * ((half * (1.0f + rounding)) * half);
  }
  return sign * (edge_soft_expf(sum) * (1.0f + rounding));
}

/* libm's function on a host, the portable one (or the FPU's) on the target */
#if !defined(EDGE_BARE) && !defined(EDGE_TARGET_PULP) && !defined(EDGE_EMULATED)
#include <math.h>
#define EDGE_MATH_IMPL(hosted, freestanding) hosted
#else
#define EDGE_MATH_IMPL(hosted, freestanding) freestanding
#endif
static inline float edge_expf(float x) { return EDGE_MATH_IMPL(expf, edge_soft_expf)(x); }
static inline float edge_logf(float x) { return EDGE_MATH_IMPL(logf, edge_soft_logf)(x); }
static inline float edge_tanhf(float x) { return EDGE_MATH_IMPL(tanhf, edge_soft_tanhf)(x); }
static inline float edge_erff(float x) { return EDGE_MATH_IMPL(erff, edge_soft_erff)(x); }
static inline float edge_sqrtf(float x) { return EDGE_MATH_IMPL(sqrtf, __builtin_sqrtf)(x); }
static inline float edge_powf(float x, float y) {
  return EDGE_MATH_IMPL(powf, edge_soft_powf)(x, y);
}

#endif /* EDGE_MATH_H */
