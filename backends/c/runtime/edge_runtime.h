/* edge-opt runtime: every kernel the generated code calls.
 *
 * Conventions (all kernels):
 *   - float32 tensors are dense, row-major `float` arrays; shapes come as arguments or in
 *     a `const edge_<kernel>_t *` parameter struct that the generated code declares
 *     `static const`;
 *   - every core of the team calls the kernel with the same arguments; the kernel splits
 *     its outputs between cores (edge_split: contiguous chunks in core order, every output
 *     element computed entirely by one core in a fixed order, so results do not depend on
 *     the number of cores) and ends with edge_barrier();
 *   - an output may be the same buffer as an input only where the compiler says the kernel
 *     runs in place (element-wise kernels, optimizer updates); otherwise buffers are
 *     disjoint.
 */
#ifndef EDGE_RUNTIME_H
#define EDGE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "edge_math.h"
#include "edge_platform.h"
#include "edge_simd.h"

#define EDGE_MAX_RANK 6

/* A kernel's helper whose constant arguments must reach its loops (block shapes that
 * unroll into registers). */
#define EDGE_INLINE static inline __attribute__((always_inline))

/* Copies `bytes` bytes (all cores share the work). */
void edge_copy(const void *src, void *dst, size_t bytes);

/* Copies `bytes` bytes on the calling core only. */
static inline void edge_copy_serial(const void *src, void *dst, size_t bytes) {
  const uint8_t *s = (const uint8_t *)src;
  uint8_t *d = (uint8_t *)dst;
  if (s == d) return;
  for (size_t i = 0; i < bytes; i++) d[i] = s[i];
}

#include "edge_kernels_elementwise.h"
#include "edge_kernels_linalg.h"
#include "edge_kernels_conv_pool.h"
#include "edge_kernels_norm.h"
#include "edge_kernels_shape.h"
#include "edge_kernels_train.h"
#include "edge_kernels_int8.h"
#include "edge_dma.h"

#endif /* EDGE_RUNTIME_H */
