/* edge-opt runtime: DMA copies and tile arithmetic (see edge_dma.h). */
#include "edge_dma.h"

/* Calls copy(src element, dst element) over a box pair, outer axes first. Not inlined:
 * the profiler leaves its work (the DMA engine's on the target) out of the counts. */
__attribute__((noinline)) static void copy_box(const uint8_t *src, const edge_box_t *sb, uint8_t *dst,
                     const edge_box_t *db, int32_t size, int32_t fill) {
  int32_t index[EDGE_DMA_MAX_RANK] = {0};
  int32_t total = edge_box_count(db);
  for (int32_t i = 0; i < total; i++) {
    int32_t so = 0, d_off = 0;
    for (int32_t a = 0; a < db->rank; a++) {
      so += index[a] * sb->strides[a];
      d_off += index[a] * db->strides[a];
    }
    uint8_t *d = dst + (size_t)d_off * (size_t)size;
    if (fill) {
      for (int32_t b = 0; b < size; b++) d[b] = 0xFF;
    } else {
      const uint8_t *s = src + (size_t)so * (size_t)size;
      for (int32_t b = 0; b < size; b++) d[b] = s[b];
    }
    for (int32_t a = db->rank - 1; a >= 0; a--) {
      if (++index[a] < db->shape[a]) break;
      index[a] = 0;
    }
  }
}

#if defined(EDGE_TARGET_PULP)
static struct pi_device *edge_ram;
void edge_dma_set_ram(struct pi_device *ram) { edge_ram = ram; }

static int in_l1(const void *p) {
  return (uintptr_t)p >= (uintptr_t)ARCHI_CLUSTER_ADDR &&
         (uintptr_t)p < (uintptr_t)ARCHI_CLUSTER_ADDR + ARCHI_CLUSTER_SIZE;
}

void edge_dma_start(edge_dma_t *t, const void *src, const edge_box_t *src_box, void *dst,
                    const edge_box_t *dst_box, int32_t element_size) {
  t->src = (const uint8_t *)src;
  t->dst = (uint8_t *)dst;
  t->pending = src != 0 && dst != 0;
  t->issued = 0;
  if (!t->pending) return;
  t->src_box = *src_box;
  t->dst_box = *dst_box;
  t->element_size = element_size;
  int l1_src = in_l1(src), l1_dst = in_l1(dst);
  const edge_box_t *ext = l1_src ? dst_box : src_box;
  int32_t rank = ext->rank;
  int32_t row = rank ? ext->shape[rank - 1] * element_size : element_size;
  int contiguous_rows = rank == 0 || ext->strides[rank - 1] == 1;
  if ((l1_src || l1_dst) && contiguous_rows && rank <= 2) {
    /* One 2-D command: rows of `row` bytes, `stride` bytes apart in L2, packed in L1. */
    int32_t rows = rank == 2 ? ext->shape[0] : 1;
    int32_t stride = rank == 2 ? ext->strides[0] * element_size : row;
    void *l2 = l1_src ? dst : (void *)src;
    void *l1 = l1_src ? (void *)src : dst;
    pi_cl_dma_cmd_2d((uint32_t)l2, (uint32_t)l1, (uint32_t)(rows * row), (uint32_t)stride,
                     (uint32_t)row, l1_src ? PI_CL_DMA_DIR_LOC2EXT : PI_CL_DMA_DIR_EXT2LOC,
                     &t->cmd);
    t->issued = 1;
  }
}

void edge_dma_wait(edge_dma_t *t) {
  if (!t->pending) return;
  if (t->issued) {
    pi_cl_dma_cmd_wait(&t->cmd);
  } else if (in_l1(t->src) || in_l1(t->dst)) {
    /* A box of rank > 2: plane by plane through the calling core (still correct). */
    copy_box(t->src, &t->src_box, t->dst, &t->dst_box, t->element_size, 0);
  } else {
    /* L3 <-> L2: the buffers are whole and dense (staging). */
    int32_t bytes = edge_box_count(&t->src_box) * t->element_size;
    pi_cl_ram_req_t req;
    int to_ram = (uintptr_t)t->dst < (uintptr_t)ARCHI_L2_ADDR;
    pi_cl_ram_copy(edge_ram, (uint32_t)(to_ram ? t->dst : t->src),
                   (void *)(to_ram ? (void *)t->src : (void *)t->dst), (uint32_t)bytes,
                   to_ram ? 0 : 1, &req);
    pi_cl_ram_copy_wait(&req);
  }
  t->pending = 0;
}
#else
void edge_dma_start(edge_dma_t *t, const void *src, const edge_box_t *src_box, void *dst,
                    const edge_box_t *dst_box, int32_t element_size) {
  t->src = (const uint8_t *)src;
  t->dst = (uint8_t *)dst;
  t->pending = src != 0 && dst != 0;
  if (!t->pending) return;
  t->src_box = *src_box;
  t->dst_box = *dst_box;
  t->element_size = element_size;
  /* Until the wait the destination holds no data: NaN for floats. */
  copy_box(0, src_box, t->dst, dst_box, element_size, 1);
}

void edge_dma_wait(edge_dma_t *t) {
  if (!t->pending) return;
  copy_box(t->src, &t->src_box, t->dst, &t->dst_box, t->element_size, 0);
  t->pending = 0;
}
#endif

int32_t edge_tile_selected(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                           int32_t when) {
  if (tile < 0 || tile >= s->count) return 0;
  if (when == EDGE_WHEN_FIRST) return tile % o->window_stride == 0;
  if (when == EDGE_WHEN_LAST) return (tile + 1) % o->window_stride == 0;
  return 1;
}

/* Tile `tile`'s box of the operand: offsets and lengths per axis; a halo axis clipped
 * to the operand when `clip` is set (its offset may be negative otherwise). */
static void window_of(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                      int32_t *offsets, int32_t *lengths, int32_t clip) {
  for (int32_t a = 0; a < o->rank; a++) {
    int32_t d = o->map[a];
    if (d < 0) {
      offsets[a] = 0;
      lengths[a] = o->shape[a];
      continue;
    }
    int32_t start = tile / s->inner[d] % s->counts[d] * s->sizes[d];
    int32_t rest = s->extents[d] - start;
    int32_t length = rest < s->sizes[d] ? rest : s->sizes[d];
    if (a == o->halo_axis) {
      start = start * o->halo_stride - o->halo_before;
      length = (length - 1) * o->halo_stride + o->halo_span;
      if (clip) {
        int32_t end = start + length < o->shape[a] ? start + length : o->shape[a];
        start = start > 0 ? start : 0;
        length = end - start;
      }
    }
    offsets[a] = start;
    lengths[a] = length;
  }
}

void *edge_tile_window(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                       const void *base, int32_t element_size, edge_box_t *box) {
  int32_t offsets[EDGE_DMA_MAX_RANK];
  window_of(s, o, tile, offsets, box->shape, 1);
  box->rank = o->rank;
  int32_t stride = 1, first = 0;
  for (int32_t a = o->rank - 1; a >= 0; a--) {
    box->strides[a] = stride;
    first += offsets[a] * stride;
    stride *= o->shape[a];
  }
  /* A window of an input is only read (a DMA source): const is the caller's promise. */
  return (uint8_t *)(uintptr_t)base + (size_t)first * (size_t)element_size;
}

void edge_tile_packed(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                      edge_box_t *box) {
  int32_t offsets[EDGE_DMA_MAX_RANK];
  window_of(s, o, tile, offsets, box->shape, 0);
  box->rank = o->rank;
  int32_t stride = 1;
  for (int32_t a = o->rank - 1; a >= 0; a--) {
    box->strides[a] = stride;
    stride *= box->shape[a];
  }
}

void *edge_tile_pad(const edge_schedule_t *s, const edge_operand_t *o, int32_t tile,
                    void *slot, const edge_box_t *slot_box, const void *window,
                    const edge_box_t *window_box, int32_t element_size, edge_box_t *box,
                    int32_t fill) {
  if (slot == 0 || window == 0) return 0;
  int32_t offsets[EDGE_DMA_MAX_RANK], lengths[EDGE_DMA_MAX_RANK];
  window_of(s, o, tile, offsets, lengths, 0);
  int32_t a = o->halo_axis;
  int32_t before = offsets[a] < 0 ? -offsets[a] : 0;
  int32_t inside = window_box->shape[a];
  *box = *slot_box;
  box->shape[a] = inside;
  if (fill) {
    /* per element of the axes outside the halo axis, the rows before and after */
    int32_t outer = 1, row = slot_box->strides[a] * element_size;
    for (int32_t i = 0; i < a; i++) outer *= slot_box->shape[i];
    int32_t after = slot_box->shape[a] - before - inside;
    uint8_t *bytes = (uint8_t *)slot;
    for (int32_t i = 0; i < outer; i++) {
      uint8_t *block = bytes + (size_t)i * (size_t)slot_box->shape[a] * (size_t)row;
      /* a byte loop: the freestanding (RV32) build has no string.h */
      for (int32_t b = 0; b < before * row; b++) block[b] = 0;
      uint8_t *tail = block + (size_t)(before + inside) * (size_t)row;
      for (int32_t b = 0; b < after * row; b++) tail[b] = 0;
    }
  }
  return (uint8_t *)slot + (size_t)before * (size_t)slot_box->strides[a] * (size_t)element_size;
}

int32_t edge_tile_ragged(const edge_schedule_t *s, int32_t tile) {
  int32_t mask = 0;
  for (int32_t d = 0; d < s->rank; d++) {
    int32_t c = tile / s->inner[d] % s->counts[d];
    if ((c + 1) * s->sizes[d] > s->extents[d]) mask |= 1 << d;
  }
  return mask;
}

void edge_accumulate_f32(const float *partial, float *acc, int32_t count, int32_t first) {
  int32_t begin, end;
  edge_split(count, &begin, &end);
  if (first) {
    for (int32_t i = begin; i < end; i++) acc[i] = partial[i];
  } else {
    for (int32_t i = begin; i < end; i++) acc[i] += partial[i];
  }
  edge_barrier();
}
