/* edge-opt runtime: DMA copies between memory levels and the arithmetic of tiles.
 *
 * The generated code of a tiled kernel call (the `tile` and `dma` dialects) moves each
 * tile's windows between L2 and the L1 slots the kernel computes on. Core 0 issues and
 * waits for every copy; the code puts a barrier after the waits, so the other cores
 * see what landed.
 *
 * A box is a strided view: `shape` (elements per axis) and `strides` (elements) from a
 * base pointer. A copy moves a box of the source into a box of the same shape of the
 * destination; a NULL pointer on either side is a copy of nothing (a tile without a
 * window), complete at once.
 *
 * Implementations:
 *   - EDGE_TARGET_PULP: the cluster DMA of pmsis (pi_cl_dma_cmd_2d between L2 and L1,
 *     one command per 2-D plane of the box; L3 <-> L2 by pi_cl_ram_copy through the
 *     board's RAM device, which the application opens: edge_dma_set_ram);
 *   - the hosted and bare builds: a shim that, like the interpreter's deferred mode,
 *     fills the destination with 0xFF bytes (NaN) at the start and copies only at the
 *     wait (reading the source then), so that a compute that reads a tile before its
 *     wait, or a buffer overwritten while its copy is in flight, fails the host tests.
 */
#ifndef EDGE_DMA_H
#define EDGE_DMA_H

#include <stddef.h>
#include <stdint.h>

#include "edge_platform.h"

#define EDGE_DMA_MAX_RANK 6

typedef struct {
  int32_t rank;
  int32_t shape[EDGE_DMA_MAX_RANK];
  int32_t strides[EDGE_DMA_MAX_RANK];
} edge_box_t;

typedef struct {
  const uint8_t *src;
  uint8_t *dst;
  edge_box_t src_box, dst_box;
  int32_t element_size;
  int32_t pending;
#if defined(EDGE_TARGET_PULP)
  pi_cl_dma_cmd_t cmd;
  int32_t issued;
#endif
} edge_dma_t;

static inline int32_t edge_box_count(const edge_box_t *box) {
  int32_t n = 1;
  for (int32_t a = 0; a < box->rank; a++) n *= box->shape[a];
  return n;
}

/* Starts copying the box `src_box` at `src` into `dst_box` at `dst` (one shape). */
void edge_dma_start(edge_dma_t *t, const void *src, const edge_box_t *src_box, void *dst,
                    const edge_box_t *dst_box, int32_t element_size);
/* Returns when the copy has landed. */
void edge_dma_wait(edge_dma_t *t);
/* A transfer of nothing, complete at once (dma.done). */
static inline void edge_dma_none(edge_dma_t *t) { t->pending = 0; t->src = 0; t->dst = 0; }

/* The loop nest of a tiled kernel call (tile.schedule), per dimension: extent, tile
 * size, tiles, and `inner[d]`, the tiles one step of dimension d spans (the product of
 * the tile counts of the loops inside it). */
typedef struct {
  int32_t rank, count;
  int32_t extents[EDGE_DMA_MAX_RANK], sizes[EDGE_DMA_MAX_RANK], counts[EDGE_DMA_MAX_RANK];
  int32_t inner[EDGE_DMA_MAX_RANK];
} edge_schedule_t;

/* How one operand follows the nest (tile.window, tile.slot): its shape, per axis the
 * dimension it follows or -1 (whole), how many consecutive tiles share a window, and
 * its halo (a convolution's input rows): `halo_axis` follows its dimension through a
 * sliding window, the tile's elements [a, b) reading [a * halo_stride - halo_before,
 * (b - 1) * halo_stride - halo_before + halo_span); halo_axis -1: no halo. */
typedef struct {
  int32_t rank;
  int32_t shape[EDGE_DMA_MAX_RANK];
  int32_t map[EDGE_DMA_MAX_RANK];
  int32_t window_stride;
  int32_t halo_axis, halo_stride, halo_span, halo_before;
} edge_operand_t;

enum { EDGE_WHEN_ALWAYS = 0, EDGE_WHEN_FIRST = 1, EDGE_WHEN_LAST = 2 };

/* Whether tile `tile` exists and, for EDGE_WHEN_FIRST/LAST, is the first/last of the
 * tiles that share its window of `o`. */
int32_t edge_tile_selected(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                           int32_t when);
/* The window of tile `tile` of an operand stored densely at `base` (elements of
 * `element_size` bytes): returns its first element, and its box in `box`. */
void *edge_tile_window(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                       const void *base, int32_t element_size, edge_box_t *box);
/* The same window packed at the start of a slot: its box (dense strides); a halo axis
 * unclipped (the rows outside the operand are padding). */
void edge_tile_packed(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                      edge_box_t *box);
/* In a slot whose packed box is `slot_box` (edge_tile_packed), the rows of tile
 * `tile`'s halo axis outside the operand become zeros when `fill` is set (one core
 * fills); returns where the window of box `window_box` lands, with its box in `box`
 * (NULL when the window is: the tile loads nothing). */
void *edge_tile_pad(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                    void *slot, const edge_box_t *slot_box, const void *window,
                    const edge_box_t *window_box, int32_t element_size, edge_box_t *box,
                    int32_t fill);
/* Bit d set: tile `tile` is the short last tile of dimension d. */
int32_t edge_tile_ragged(const edge_schedule_t *s, int32_t tile);
/* acc = partial (first tile of the window) or acc += partial, `count` floats; every
 * core takes its share, then a barrier. */
void edge_accumulate_f32(const float *partial, float *acc, int32_t count, int32_t first);

#if defined(EDGE_TARGET_PULP)
/* The RAM device (L3) that edge_dma_* copies to and from; opened by the application. */
void edge_dma_set_ram(struct pi_device *ram);
#endif

#endif /* EDGE_DMA_H */
