/* edge-opt runtime: shape kernels (data movement and reductions).
 *
 * Data movement is type-generic: the kernels move elements of 1, 2, 4 or 8 bytes
 * (suffix _b8, _b16, _b32, _b64) and never look at their values, so one kernel serves
 * float32, int32, int64, int8 and uint8 tensors alike. Sizes, offsets and strides count
 * elements (not bytes) and are int32_t. Reductions are float32 (`nn.reduce_*` takes
 * float tensors only).
 *
 * Which kernel implements which op (the emitters in backends/c/kernels/shape.py compute
 * the parameters; see there for the stride algebra):
 *   nn.transpose, nn.broadcast_to, nn.slice   edge_strided_copy (one call)
 *   nn.concat                                 edge_strided_copy (one call per input,
 *                                             writing that input's slab of the output)
 *   nn.gather                                 edge_gather
 *   train.scatter                             edge_scatter
 *   train.slice_grad                          edge_slice_grad
 *   nn.pad (float32)                          edge_pad_f32
 *   nn.reduce_sum, nn.reduce_mean             edge_reduce_sum_f32, edge_reduce_mean_f32
 *
 * Outputs never alias inputs, except edge_scatter's `out`, which may be `dest` (the
 * update then writes only the scattered slices).
 */
#ifndef EDGE_KERNELS_SHAPE_H
#define EDGE_KERNELS_SHAPE_H

#include <stdint.h>

/* For every index (i_0, ..., i_{rank-1}) of `shape`:
 *   dst[dst_offset + sum_a i_a * dst_strides[a]] =
 *     src[src_offset + sum_a i_a * src_strides[a]]
 * Source strides may be negative (slices with negative steps) or 0 (broadcast axes);
 * destination strides address every destination element at most once. The index
 * space (row-major order) is what the cores split. 1 <= rank <= EDGE_MAX_RANK. */
typedef struct {
  int32_t rank;
  int32_t shape[6];
  int32_t src_strides[6];
  int32_t dst_strides[6];
  int32_t src_offset;
  int32_t dst_offset;
} edge_strided_copy_t;

/* The input seen as (outer, size, inner), the output as (outer, count, inner):
 *   dst[o][k][j] = src[o][indices[k]][j], 0 <= indices[k] < size (repeats allowed). */
typedef struct {
  int32_t outer;
  int32_t size;
  int32_t inner;
  int32_t count;
  const int32_t *indices;
} edge_gather_t;

/* `dest` and `out` seen as (outer, size, inner), `values` as (outer, count, inner):
 *   out[o][c][j] = positions[c] >= 0 ? values[o][positions[c]][j] : dest[o][c][j],
 * where positions (size entries) is the inverse of the op's unique indices. */
typedef struct {
  int32_t outer;
  int32_t size;
  int32_t inner;
  int32_t count;
  const int32_t *positions;
} edge_scatter_t;

/* dx (of `shape`) is zero except at the sliced positions: along axis a the sliced
 * indices are first[a] + k * step[a], 0 <= k < count[a] (ascending, step > 0), and
 *   dx[..., first[a] + k_a * step[a], ...] = dy[dy_offset + sum_a k_a * dy_strides[a]]
 * (a negative step of the op is an ascending range here with a negative dy stride). */
typedef struct {
  int32_t rank;
  int32_t shape[6];
  int32_t first[6];
  int32_t step[6];
  int32_t count[6];
  int32_t dy_strides[6];
  int32_t dy_offset;
} edge_slice_grad_t;

#define EDGE_SHAPE_KERNELS(bits)                                                       \
  void edge_strided_copy_b##bits(const edge_strided_copy_t *p, const void *src,        \
                                 void *dst);                                           \
  void edge_gather_b##bits(const edge_gather_t *p, const void *src, void *dst);        \
  void edge_scatter_b##bits(const edge_scatter_t *p, const void *dest,                 \
                            const void *values, void *out);                            \
  void edge_slice_grad_b##bits(const edge_slice_grad_t *p, const void *dy, void *dx);
EDGE_SHAPE_KERNELS(8)
EDGE_SHAPE_KERNELS(16)
EDGE_SHAPE_KERNELS(32)
EDGE_SHAPE_KERNELS(64)
#undef EDGE_SHAPE_KERNELS

/* Constant padding: y (of `shape`) is `value` except where the crop that undoes the pad
 * reads x: the same index map as the slice gradient, with x as dy (steps 1, `first` the
 * padding before each axis). */
void edge_pad_f32(const edge_slice_grad_t *p, float value, const float *x, float *y);

/* y[o] = sum over the reduced index space of x[offset(o) + r], where the output
 * index o runs over `shape` (the kept axes, row-major, dense in y) with input strides
 * `strides`, and the reduced index r over `reduced_shape` with input strides
 * `reduced_strides`. Each output is summed by one core in row-major order of the
 * reduced index, in float32: the innermost reduced axis into a row sum, row sums into
 * the total. The mean divides the sum by the reduced element count.
 * 1 <= rank, reduced_rank <= EDGE_MAX_RANK. */
typedef struct {
  int32_t rank;
  int32_t shape[6];
  int32_t strides[6];
  int32_t reduced_rank;
  int32_t reduced_shape[6];
  int32_t reduced_strides[6];
} edge_reduce_t;

void edge_reduce_sum_f32(const edge_reduce_t *p, const float *x, float *y);
void edge_reduce_mean_f32(const edge_reduce_t *p, const float *x, float *y);

#endif /* EDGE_KERNELS_SHAPE_H */
