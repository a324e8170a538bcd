/* edge-opt runtime: XpulpV2 SIMD intrinsics and their vector types.
 *
 * Kernels use the PULP GCC builtins (__builtin_pulp_sdotsp4, ...). A real PULP GCC has
 * them (EDGE_TARGET_PULP with __PULP_GCC__ ... set EDGE_HAVE_PULP_BUILTINS); elsewhere
 * this header defines them: as CORE-V inline assembly (cv.*, the standardised successor
 * of XpulpV2) when the compiler targets the CORE-V SIMD extension (__riscv_xcvsimd),
 * and as portable C otherwise. Portable accumulations go through uint32_t so that
 * overflow wraps, as the hardware does, without undefined behaviour.
 */
#ifndef EDGE_SIMD_H
#define EDGE_SIMD_H

#include <stdint.h>

typedef signed char v4s __attribute__((vector_size(4)));
typedef unsigned char v4u __attribute__((vector_size(4)));
typedef short v2s __attribute__((vector_size(4)));

#ifndef EDGE_HAVE_PULP_BUILTINS

static inline int32_t edge_bits4(v4s v) {
  int32_t r;
  __builtin_memcpy(&r, &v, 4);
  return r;
}

static inline int32_t edge_bits2(v2s v) {
  int32_t r;
  __builtin_memcpy(&r, &v, 4);
  return r;
}

/* acc + sum of the four signed byte products */
static inline int32_t __builtin_pulp_sdotsp4(v4s a, v4s b, int32_t acc) {
#if defined(__riscv_xcvsimd)
  __asm__("cv.sdotsp.b %0, %1, %2" : "+r"(acc) : "r"(edge_bits4(a)), "r"(edge_bits4(b)));
  return acc;
#else
  uint32_t sum = (uint32_t)acc;
  for (int i = 0; i < 4; i++) sum += (uint32_t)((int32_t)a[i] * (int32_t)b[i]);
  return (int32_t)sum;
#endif
}

/* sum of the four signed byte products */
static inline int32_t __builtin_pulp_dotsp4(v4s a, v4s b) {
#if defined(__riscv_xcvsimd)
  int32_t r;
  __asm__("cv.dotsp.b %0, %1, %2" : "=r"(r) : "r"(edge_bits4(a)), "r"(edge_bits4(b)));
  return r;
#else
  return __builtin_pulp_sdotsp4(a, b, 0);
#endif
}

/* acc + sum of the two signed halfword products */
static inline int32_t __builtin_pulp_sdotsp2(v2s a, v2s b, int32_t acc) {
#if defined(__riscv_xcvsimd)
  __asm__("cv.sdotsp.h %0, %1, %2" : "+r"(acc) : "r"(edge_bits2(a)), "r"(edge_bits2(b)));
  return acc;
#else
  uint32_t sum = (uint32_t)acc;
  for (int i = 0; i < 2; i++) sum += (uint32_t)((int32_t)a[i] * (int32_t)b[i]);
  return (int32_t)sum;
#endif
}

/* x clipped to [-2^(bits-1), 2^(bits-1) - 1], as PULP's p.clip with bits = log2 + 1 */
static inline int32_t __builtin_pulp_clip(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* EDGE_HAVE_PULP_BUILTINS */

#endif /* EDGE_SIMD_H */
