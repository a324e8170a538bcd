/* The freestanding math of the runtime (edge_soft_* in runtime/edge_math.h) against
 * the host's libm in double precision, rounded once to float (the correctly rounded
 * result in all but rare ties).
 *
 *   math_ulp FUNCTION STRIDE
 *
 * FUNCTION is exp, log, tanh, erf or pow. Every STRIDE-th float bit pattern is a
 * sample (STRIDE 1: all 2^32 of them), and every pattern of the EDGES ranges; pow pairs
 * each sample x with the exponents of POW_EXPONENTS. Prints one line:
 *   FUNCTION samples N max_ulp U worst_x X worst_y Y special_mismatches M
 *   first_special_x A first_special_y B
 * where the ulp distance is that of the ordered bit patterns (0 for the same infinity
 * or two NaNs), and a special mismatch is a NaN on one side only or a differing
 * infinity or zero sign (A, B: the first such sample). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_math.h"

static const float POW_EXPONENTS[] = {
    0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 3.0f, -3.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f,
    7.0f, 16.0f, 17.0f, -17.0f, 20.0f, -21.0f, 31.0f, 0.333333343f, 1e-3f, 10.25f,
    -7.75f, INFINITY, -INFINITY, NAN};

/* Bit-pattern ranges swept completely besides the stride: the edges where the
 * implementations once failed (exp just below overflow, log of subnormals and of inf,
 * the smallest normals). */
static const uint32_t EDGES[][2] = {
    {0x42b00000u, 0x42b20000u}, /* x in [88, 89]: exp's overflow threshold */
    {0xc2cf0000u, 0xc2d00000u}, /* x near -103.97: exp's underflow to 0 */
    {0x00000000u, 0x00800000u}, /* +0 and the subnormals */
    {0x80000000u, 0x80800000u}, /* -0 and negative subnormals */
    {0x7f7f0000u, 0x7fc00001u}, /* the largest floats, inf, the first NaNs */
    {0xff7f0000u, 0xff800001u}, /* the most negative floats, -inf */
    {0x3f7f0000u, 0x3f810000u}, /* around 1 */
};

static int64_t ordered(float f) {
  int32_t i;
  memcpy(&i, &f, 4);
  return i < 0 ? -(int64_t)(i & 0x7fffffff) : (int64_t)i;
}

/* -1: a special-value mismatch; otherwise the ulp distance. */
static int64_t distance(float value, float reference) {
  if (isnan(value) || isnan(reference)) return isnan(value) && isnan(reference) ? 0 : -1;
  if ((isinf(value) || isinf(reference)) && value != reference) return -1;
  if (value == 0.0f && reference == 0.0f && signbit(value) != signbit(reference))
    return -1;
  int64_t d = ordered(value) - ordered(reference);
  return d < 0 ? -d : d;
}

static float reference(const char *name, float x, float y) {
  if (!strcmp(name, "exp")) return (float)exp((double)x);
  if (!strcmp(name, "log")) return (float)log((double)x);
  if (!strcmp(name, "tanh")) return (float)tanh((double)x);
  if (!strcmp(name, "erf")) return (float)erf((double)x);
  return (float)pow((double)x, (double)y);
}

static float soft(const char *name, float x, float y) {
  if (!strcmp(name, "exp")) return edge_soft_expf(x);
  if (!strcmp(name, "log")) return edge_soft_logf(x);
  if (!strcmp(name, "tanh")) return edge_soft_tanhf(x);
  if (!strcmp(name, "erf")) return edge_soft_erff(x);
  return edge_soft_powf(x, y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s exp|log|tanh|erf|pow STRIDE\n", argv[0]);
    return 2;
  }
  const char *name = argv[1];
  uint64_t stride = strtoull(argv[2], NULL, 10);
  if (stride == 0) return 2;
  int binary = !strcmp(name, "pow");
  size_t exponents = binary ? sizeof POW_EXPONENTS / sizeof POW_EXPONENTS[0] : 1;
  uint64_t samples = 0, mismatches = 0;
  int64_t worst = 0;
  float worst_x = 0.0f, worst_y = 0.0f, special_x = 0.0f, special_y = 0.0f;
  size_t ranges = sizeof EDGES / sizeof EDGES[0];
  /* the stride over all floats, then the edges (with pow's stride: 16x denser) */
  for (size_t range = 0; range <= ranges; range++) {
   uint64_t first = range == 0 ? 0 : EDGES[range - 1][0];
   uint64_t last = range == 0 ? (1ull << 32) : EDGES[range - 1][1];
   uint64_t step = range == 0 ? stride : (binary ? (stride + 15) / 16 : 1);
   for (uint64_t bits = first; bits < last; bits += step) {
    float x;
    uint32_t b = (uint32_t)bits;
    memcpy(&x, &b, 4);
    for (size_t j = 0; j < exponents; j++) {
      float y = binary ? POW_EXPONENTS[j] : 0.0f;
      int64_t d = distance(soft(name, x, y), reference(name, x, y));
      samples++;
      if (d < 0) {
        if (mismatches++ == 0) special_x = x, special_y = y;
      } else if (d > worst) {
        worst = d, worst_x = x, worst_y = y;
      }
    }
   }
  }
  printf("%s samples %llu max_ulp %lld worst_x %.9g worst_y %.9g special_mismatches %llu "
         "first_special_x %.9g first_special_y %.9g\n",
         name, (unsigned long long)samples, (long long)worst, (double)worst_x,
         (double)worst_y, (unsigned long long)mismatches, (double)special_x,
         (double)special_y);
  return 0;
}
