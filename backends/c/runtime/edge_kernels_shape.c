/* edge-opt runtime: shape kernels (see edge_kernels_shape.h).
 *
 * Every kernel splits its output elements (row-major) with edge_split and walks its
 * share row by row: the innermost axis is a tight loop, the outer axes advance like an
 * odometer (no division per element). Divisions happen once per call and core, when a
 * core locates the first element of its share.
 */
#include "edge_runtime.h"

/* The moved elements: unsigned integers of the element size that may alias any object
 * (the kernels move the bits of float, integer and byte tensors). */
typedef uint8_t edge_e8 __attribute__((may_alias));
typedef uint16_t edge_e16 __attribute__((may_alias));
typedef uint32_t edge_e32 __attribute__((may_alias));
typedef uint64_t edge_e64 __attribute__((may_alias));

static inline int32_t element_count(int32_t rank, const int32_t *shape) {
  int32_t n = 1;
  for (int32_t a = 0; a < rank; a++) n *= shape[a];
  return n;
}

/* The coordinates of row-major element `index` of `shape`, and its offset with
 * `strides` added to *offset (strides may be NULL). */
static inline void locate(int32_t rank, const int32_t *shape, int32_t index,
                          int32_t *coord, const int32_t *strides, int32_t *offset) {
  for (int32_t a = rank - 1; a >= 0; a--) {
    coord[a] = index % shape[a];
    index /= shape[a];
    if (strides) *offset += coord[a] * strides[a];
  }
}

/* Advances coordinates over axes [0, last) by one (the odometer carry) and the offsets
 * of two stride vectors with them (either may be NULL). */
static inline void advance(int32_t last, const int32_t *shape, int32_t *coord,
                           const int32_t *strides_a, int32_t *offset_a,
                           const int32_t *strides_b, int32_t *offset_b) {
  for (int32_t a = last - 1; a >= 0; a--) {
    if (strides_a) *offset_a += strides_a[a];
    if (strides_b) *offset_b += strides_b[a];
    if (++coord[a] < shape[a]) return;
    if (strides_a) *offset_a -= strides_a[a] * shape[a];
    if (strides_b) *offset_b -= strides_b[a] * shape[a];
    coord[a] = 0;
  }
}

/* The end of the row part [column, width) that a share ending at `end` covers from
 * element `i`. */
static inline int32_t row_stop(int32_t column, int32_t width, int32_t i, int32_t end) {
  return width - column > end - i ? column + (end - i) : width;
}

/* --- strided copy: transpose, broadcast_to, slice, concat -------------------------- */

#define STRIDED_COPY(bits)                                                             \
  void edge_strided_copy_b##bits(const edge_strided_copy_t *p, const void *src_,       \
                                 void *dst_) {                                         \
    const edge_e##bits *src = (const edge_e##bits *)src_;                              \
    edge_e##bits *dst = (edge_e##bits *)dst_;                                          \
    int32_t begin, end;                                                                \
    edge_split(element_count(p->rank, p->shape), &begin, &end);                        \
    if (begin < end) {                                                                 \
      const int32_t last = p->rank - 1, width = p->shape[last];                        \
      const int32_t ss = p->src_strides[last], ds = p->dst_strides[last];              \
      int32_t coord[EDGE_MAX_RANK] = {0};                                              \
      int32_t s = p->src_offset, d = p->dst_offset;                                    \
      locate(p->rank, p->shape, begin, coord, p->src_strides, &s);                     \
      int32_t column = coord[last];                                                    \
      for (int32_t a = 0; a < p->rank; a++) d += coord[a] * p->dst_strides[a];         \
      /* s and d: offsets of the current row's column 0 */                             \
      s -= column * ss;                                                                \
      d -= column * ds;                                                                \
      for (int32_t i = begin;;) {                                                      \
        int32_t stop = row_stop(column, width, i, end);                                \
        if (ss == 1 && ds == 1) {                                                      \
          const edge_e##bits *from = src + s;                                          \
          edge_e##bits *to = dst + d;                                                  \
          for (int32_t c = column; c < stop; c++) to[c] = from[c];                     \
        } else {                                                                       \
          for (int32_t c = column; c < stop; c++) dst[d + c * ds] = src[s + c * ss];   \
        }                                                                              \
        i += stop - column;                                                            \
        if (i >= end) break;                                                           \
        column = 0;                                                                    \
        advance(last, p->shape, coord, p->src_strides, &s, p->dst_strides, &d);        \
      }                                                                                \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

/* --- gather and scatter along one axis ------------------------------------------- */

#define GATHER(bits)                                                                   \
  void edge_gather_b##bits(const edge_gather_t *p, const void *src_, void *dst_) {     \
    const edge_e##bits *src = (const edge_e##bits *)src_;                              \
    edge_e##bits *dst = (edge_e##bits *)dst_;                                          \
    const int32_t inner = p->inner, count = p->count, size = p->size;                  \
    int32_t begin, end;                                                                \
    edge_split(p->outer * count * inner, &begin, &end);                                \
    if (begin < end) {                                                                 \
      int32_t row = begin / inner, column = begin - row * inner;                       \
      int32_t k = row % count, o = row / count;                                        \
      for (int32_t i = begin;;) {                                                      \
        int32_t stop = row_stop(column, inner, i, end);                                \
        const edge_e##bits *from = src + (o * size + p->indices[k]) * inner;           \
        edge_e##bits *to = dst + (o * count + k) * inner;                              \
        for (int32_t c = column; c < stop; c++) to[c] = from[c];                       \
        i += stop - column;                                                            \
        if (i >= end) break;                                                           \
        column = 0;                                                                    \
        if (++k == count) {                                                            \
          k = 0;                                                                       \
          o++;                                                                         \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

#define SCATTER(bits)                                                                  \
  void edge_scatter_b##bits(const edge_scatter_t *p, const void *dest_,                \
                            const void *values_, void *out_) {                         \
    const edge_e##bits *dest = (const edge_e##bits *)dest_;                            \
    const edge_e##bits *values = (const edge_e##bits *)values_;                        \
    edge_e##bits *out = (edge_e##bits *)out_;                                          \
    const int32_t inner = p->inner, count = p->count, size = p->size;                  \
    const int in_place = dest == out;                                                  \
    int32_t begin, end;                                                                \
    edge_split(p->outer * size * inner, &begin, &end);                                 \
    if (begin < end) {                                                                 \
      int32_t row = begin / inner, column = begin - row * inner;                       \
      int32_t c = row % size, o = row / size;                                          \
      for (int32_t i = begin;;) {                                                      \
        int32_t stop = row_stop(column, inner, i, end);                                \
        int32_t position = p->positions[c];                                            \
        edge_e##bits *to = out + (o * size + c) * inner;                               \
        if (position >= 0) {                                                           \
          const edge_e##bits *from = values + (o * count + position) * inner;          \
          for (int32_t j = column; j < stop; j++) to[j] = from[j];                     \
        } else if (!in_place) {                                                        \
          const edge_e##bits *from = dest + (o * size + c) * inner;                    \
          for (int32_t j = column; j < stop; j++) to[j] = from[j];                     \
        }                                                                              \
        i += stop - column;                                                            \
        if (i >= end) break;                                                           \
        column = 0;                                                                    \
        if (++c == size) {                                                             \
          c = 0;                                                                       \
          o++;                                                                         \
        }                                                                              \
      }                                                                                \
    }                                                                                  \
    edge_barrier();                                                                    \
  }

/* --- slice gradient: a gather per output element ---------------------------------- */

/* Whether the outer coordinates (axes [0, last)) of a dx row are all sliced; if so,
 * *dy_row is the dy offset of the row's slice position 0 along the last axis. */
static inline int slice_row_hit(const edge_slice_grad_t *p, const int32_t *coord,
                                int32_t last, int32_t *dy_row) {
  int32_t offset = p->dy_offset;
  for (int32_t a = 0; a < last; a++) {
    int32_t delta = coord[a] - p->first[a];
    if (delta < 0) return 0;
    int32_t k = delta / p->step[a];
    if (k * p->step[a] != delta || k >= p->count[a]) return 0;
    offset += k * p->dy_strides[a];
  }
  *dy_row = offset;
  return 1;
}

/* dx is `fill` except at the sliced positions (the slice gradient fills 0, a constant
 * pad its value: a pad is the slice gradient of the crop that undoes it). */
#define SLICE_FILL(bits)                                                               \
  static void slice_fill_b##bits(const edge_slice_grad_t *p, const void *dy_,          \
                                 void *dx_, edge_e##bits fill) {                       \
    const edge_e##bits *dy = (const edge_e##bits *)dy_;                                \
    edge_e##bits *dx = (edge_e##bits *)dx_;                                            \
    int32_t begin, end;                                                                \
    edge_split(element_count(p->rank, p->shape), &begin, &end);                        \
    if (begin < end) {                                                                 \
      const int32_t last = p->rank - 1, width = p->shape[last];                        \
      const int32_t first = p->first[last], step = p->step[last];                      \
      const int32_t count = p->count[last], dys = p->dy_strides[last];                 \
      int32_t coord[EDGE_MAX_RANK] = {0};                                              \
      locate(p->rank, p->shape, begin, coord, (const int32_t *)0, (int32_t *)0);       \
      int32_t column = coord[last];                                                    \
      edge_e##bits *row = dx + (begin - column);                                       \
      for (int32_t i = begin;;) {                                                      \
        int32_t stop = row_stop(column, width, i, end);                                \
        int32_t dy_row;                                                                \
        if (!slice_row_hit(p, coord, last, &dy_row)) {                                 \
          for (int32_t c = column; c < stop; c++) row[c] = fill;                       \
        } else {                                                                       \
          /* k: slice position of `next`, the first sliced column >= column */         \
          int32_t k = column <= first ? 0 : (column - first + step - 1) / step;        \
          int32_t next = first + k * step;                                             \
          for (int32_t c = column; c < stop; c++) {                                    \
            if (c == next && k < count) {                                              \
              row[c] = dy[dy_row + k * dys];                                           \
              k++;                                                                     \
              next += step;                                                            \
            } else {                                                                   \
              row[c] = fill;                                                           \
            }                                                                          \
          }                                                                            \
        }                                                                              \
        i += stop - column;                                                            \
        if (i >= end) break;                                                           \
        column = 0;                                                                    \
        row += width;                                                                  \
        advance(last, p->shape, coord, (const int32_t *)0, (int32_t *)0,               \
                (const int32_t *)0, (int32_t *)0);                                     \
      }                                                                                \
    }                                                                                  \
    edge_barrier();                                                                    \
  }                                                                                    \
  void edge_slice_grad_b##bits(const edge_slice_grad_t *p, const void *dy,             \
                               void *dx) {                                             \
    slice_fill_b##bits(p, dy, dx, 0);                                                  \
  }

#define SHAPE_KERNELS(bits)                                                            \
  STRIDED_COPY(bits)                                                                   \
  GATHER(bits)                                                                         \
  SCATTER(bits)                                                                        \
  SLICE_FILL(bits)

SHAPE_KERNELS(8)
SHAPE_KERNELS(16)
SHAPE_KERNELS(32)
SHAPE_KERNELS(64)

void edge_pad_f32(const edge_slice_grad_t *p, float value, const float *x, float *y) {
  edge_e32 fill;
  __builtin_memcpy(&fill, &value, sizeof fill);
  slice_fill_b32(p, x, y, fill);
}

/* --- reductions ---------------------------------------------------------------------- */

static void reduce_f32(const edge_reduce_t *p, const float *x, float *y, int mean) {
  int32_t begin, end;
  edge_split(element_count(p->rank, p->shape), &begin, &end);
  if (begin < end) {
    const int32_t reduced = element_count(p->reduced_rank, p->reduced_shape);
    const int32_t rlast = p->reduced_rank - 1;
    const int32_t width = p->reduced_shape[rlast], rs = p->reduced_strides[rlast];
    const float divisor = (float)reduced;
    int32_t coord[EDGE_MAX_RANK] = {0};
    int32_t base = 0;
    locate(p->rank, p->shape, begin, coord, p->strides, &base);
    for (int32_t i = begin; i < end; i++) {
      int32_t rcoord[EDGE_MAX_RANK] = {0};
      int32_t row = base;
      float total = 0.0f;
      for (int32_t r = 0; r < reduced; r += width) {
        float sum = 0.0f;
        for (int32_t j = 0; j < width; j++) sum += x[row + j * rs];
        total += sum;
        advance(rlast, p->reduced_shape, rcoord, p->reduced_strides, &row,
                (const int32_t *)0, (int32_t *)0);
      }
      y[i] = mean ? total / divisor : total;
      advance(p->rank, p->shape, coord, p->strides, &base, (const int32_t *)0,
              (int32_t *)0);
    }
  }
  edge_barrier();
}

void edge_reduce_sum_f32(const edge_reduce_t *p, const float *x, float *y) {
  reduce_f32(p, x, y, 0);
}

void edge_reduce_mean_f32(const edge_reduce_t *p, const float *x, float *y) {
  reduce_f32(p, x, y, 1);
}
