/* edge-opt runtime: softmax and normalisation kernels (see edge_kernels_norm.h).
 *
 * Every output element is computed by one core, always by the same sequence of float
 * operations: statistics are recomputed from the inputs by whichever core needs them
 * (a grad_scale kernel recomputes the statistics of every row it reduces over), and the
 * sums run in a fixed order. Results are therefore bitwise the same for any number of
 * cores. */
#include "edge_runtime.h"

/* --- statistics ------------------------------------------------------------------- */

/* Mean and 1 / sqrt(var + epsilon) of x[0..n), biased variance by two passes, as the
 * numerics compute it. Each pass sums the even and the odd elements apart (two
 * independent additions per loop trip, half the loop overhead). */
static inline void moments(const float *x, int32_t n, float epsilon, float *mean,
                           float *rstd) {
  float even = 0.0f, odd = 0.0f;
  int32_t i = 0;
  for (; i + 2 <= n; i += 2) {
    even += x[i];
    odd += x[i + 1];
  }
  if (i < n) even += x[i];
  const float m = (even + odd) / (float)n;
  even = odd = 0.0f;
  for (i = 0; i + 2 <= n; i += 2) {
    const float d0 = x[i] - m, d1 = x[i + 1] - m;
    even += d0 * d0;
    odd += d1 * d1;
  }
  if (i < n) even += (x[i] - m) * (x[i] - m);
  *mean = m;
  *rstd = 1.0f / edge_sqrtf((even + odd) / (float)n + epsilon);
}

/* --- softmax family: lines of `size` elements at stride `inner` -------------------- */

static inline int32_t line_start(const edge_softmax_t *p, int32_t line) {
  int32_t o = line / p->inner;
  int32_t i = line - o * p->inner;
  return o * p->size * p->inner + i;
}

static inline float line_max(const float *x, int32_t n, int32_t stride) {
  float m = x[0];
  for (int32_t k = 1; k < n; k++) {
    float v = x[k * stride];
    m = v > m ? v : m;
  }
  return m;
}

void edge_softmax_f32(const edge_softmax_t *p, const float *x, float *y) {
  const int32_t n = p->size, s = p->inner;
  int32_t begin, end;
  edge_split(p->outer * p->inner, &begin, &end);
  if (n > 0)
    for (int32_t line = begin; line < end; line++) {
      const float *xl = x + line_start(p, line);
      float *yl = y + line_start(p, line);
      float m = line_max(xl, n, s), sum = 0.0f;
      for (int32_t k = 0; k < n; k++) {
        float e = edge_expf(xl[k * s] - m);
        yl[k * s] = e;
        sum += e;
      }
      float r = 1.0f / sum;
      for (int32_t k = 0; k < n; k++) yl[k * s] *= r;
    }
  edge_barrier();
}

void edge_log_softmax_f32(const edge_softmax_t *p, const float *x, float *y) {
  const int32_t n = p->size, s = p->inner;
  int32_t begin, end;
  edge_split(p->outer * p->inner, &begin, &end);
  if (n > 0)
    for (int32_t line = begin; line < end; line++) {
      const float *xl = x + line_start(p, line);
      float *yl = y + line_start(p, line);
      float m = line_max(xl, n, s), sum = 0.0f;
      for (int32_t k = 0; k < n; k++) sum += edge_expf(xl[k * s] - m);
      float log_sum = edge_logf(sum);
      for (int32_t k = 0; k < n; k++) yl[k * s] = (xl[k * s] - m) - log_sum;
    }
  edge_barrier();
}

void edge_softmax_grad_f32(const edge_softmax_t *p, const float *dy, const float *y,
                           float *dx) {
  const int32_t n = p->size, s = p->inner;
  int32_t begin, end;
  edge_split(p->outer * p->inner, &begin, &end);
  for (int32_t line = begin; line < end; line++) {
    int32_t start = line_start(p, line);
    const float *dyl = dy + start, *yl = y + start;
    float *dxl = dx + start;
    float dot = 0.0f;
    for (int32_t k = 0; k < n; k++) dot += dyl[k * s] * yl[k * s];
    for (int32_t k = 0; k < n; k++) dxl[k * s] = yl[k * s] * (dyl[k * s] - dot);
  }
  edge_barrier();
}

void edge_log_softmax_grad_f32(const edge_softmax_t *p, const float *dy, const float *y,
                               float *dx) {
  const int32_t n = p->size, s = p->inner;
  int32_t begin, end;
  edge_split(p->outer * p->inner, &begin, &end);
  for (int32_t line = begin; line < end; line++) {
    int32_t start = line_start(p, line);
    const float *dyl = dy + start, *yl = y + start;
    float *dxl = dx + start;
    float sum = 0.0f;
    for (int32_t k = 0; k < n; k++) sum += dyl[k * s];
    for (int32_t k = 0; k < n; k++) dxl[k * s] = dyl[k * s] - edge_expf(yl[k * s]) * sum;
  }
  edge_barrier();
}

/* --- shared by the input gradients ------------------------------------------------ */

/* One element of an input gradient (train_numerics._norm_input_grad): with
 * g = dy * scale and x_hat = (x - mean) * rstd over a normalized block,
 * dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)). */
static inline float norm_input_grad(float g, float x_hat, float rstd, float mean_g,
                                    float mean_gx) {
  return rstd * (g - mean_g - x_hat * mean_gx);
}

/* --- layer norm ------------------------------------------------------------------- */

void edge_layer_norm_f32(const edge_layer_norm_t *p, const float *x, const float *scale,
                         const float *bias, float *y) {
  const int32_t n = p->size;
  int32_t begin, end;
  edge_split(p->rows, &begin, &end);
  if (n > 0)
    for (int32_t row = begin; row < end; row++) {
      const float *xr = x + row * n;
      float *yr = y + row * n;
      float mean, rstd;
      moments(xr, n, p->epsilon, &mean, &rstd);
      const float shift = -mean * rstd; /* (x - mean) rstd as one multiply-add */
      int32_t j = 0;
      for (; j + 2 <= n; j += 2) { /* two per trip: the four addresses advance once */
        yr[j] = (xr[j] * rstd + shift) * scale[j] + bias[j];
        yr[j + 1] = (xr[j + 1] * rstd + shift) * scale[j + 1] + bias[j + 1];
      }
      if (j < n) yr[j] = (xr[j] * rstd + shift) * scale[j] + bias[j];
    }
  edge_barrier();
}

void edge_layer_norm_grad_input_f32(const edge_layer_norm_t *p, const float *dy,
                                    const float *x, const float *scale, float *dx) {
  const int32_t n = p->size;
  int32_t begin, end;
  edge_split(p->rows, &begin, &end);
  if (n > 0)
    for (int32_t row = begin; row < end; row++) {
      const float *xr = x + row * n, *dyr = dy + row * n;
      float *dxr = dx + row * n;
      float mean, rstd, sum_g = 0.0f, sum_gx = 0.0f;
      moments(xr, n, p->epsilon, &mean, &rstd);
      for (int32_t j = 0; j < n; j++) {
        float g = dyr[j] * scale[j];
        sum_g += g;
        sum_gx += g * ((xr[j] - mean) * rstd);
      }
      float mean_g = sum_g / (float)n, mean_gx = sum_gx / (float)n;
      for (int32_t j = 0; j < n; j++)
        dxr[j] = norm_input_grad(dyr[j] * scale[j], (xr[j] - mean) * rstd, rstd, mean_g,
                                 mean_gx);
    }
  edge_barrier();
}

void edge_layer_norm_grad_scale_f32(const edge_layer_norm_t *p, const float *dy,
                                    const float *x, float *dscale) {
  const int32_t n = p->size;
  int32_t begin, end;
  edge_split(n, &begin, &end);
  if (begin < end) {
    if (p->rows == 0)
      for (int32_t j = begin; j < end; j++) dscale[j] = 0.0f;
    for (int32_t row = 0; row < p->rows; row++) {
      const float *xr = x + row * n, *dyr = dy + row * n;
      float mean, rstd;
      moments(xr, n, p->epsilon, &mean, &rstd);
      for (int32_t j = begin; j < end; j++) {
        float term = dyr[j] * ((xr[j] - mean) * rstd);
        dscale[j] = row == 0 ? term : dscale[j] + term;
      }
    }
  }
  edge_barrier();
}

/* --- batch norm ------------------------------------------------------------------- */

/* Mean and rstd of channel c: from the batch (training) or the running statistics. */
static inline void channel_moments(const edge_batch_norm_t *p, const float *x,
                                   const float *mean, const float *var, int32_t c,
                                   float *m, float *rstd) {
  if (!p->training) {
    *m = mean[c];
    *rstd = 1.0f / edge_sqrtf(var[c] + p->epsilon);
    return;
  }
  const int32_t spatial = p->spatial, plane = p->channels * spatial;
  const int32_t count = p->batch * spatial;
  const float *xc = x + c * spatial;
  float sum = 0.0f;
  for (int32_t b = 0; b < p->batch; b++)
    for (int32_t s = 0; s < spatial; s++) sum += xc[b * plane + s];
  float mu = sum / (float)count, squares = 0.0f;
  for (int32_t b = 0; b < p->batch; b++)
    for (int32_t s = 0; s < spatial; s++) {
      float d = xc[b * plane + s] - mu;
      squares += d * d;
    }
  *m = mu;
  *rstd = 1.0f / edge_sqrtf(squares / (float)count + p->epsilon);
}

void edge_batch_norm_f32(const edge_batch_norm_t *p, const float *x, const float *scale,
                         const float *bias, const float *mean, const float *var,
                         float *y) {
  /* In place (y == x): every element is read once, just before it is written, and the
   * training statistics of a channel are complete before its first write. */
  const int32_t spatial = p->spatial, channels = p->channels;
  int32_t begin, end;
  if (!p->training) {
    edge_split(p->batch * channels, &begin, &end);
    for (int32_t q = begin; q < end; q++) {
      int32_t c = q % channels;
      float m, rstd;
      channel_moments(p, x, mean, var, c, &m, &rstd);
      const float *xq = x + q * spatial;
      float *yq = y + q * spatial;
      for (int32_t s = 0; s < spatial; s++) yq[s] = (xq[s] - m) * rstd * scale[c] + bias[c];
    }
  } else {
    edge_split(channels, &begin, &end);
    for (int32_t c = begin; c < end; c++) {
      float m, rstd;
      channel_moments(p, x, mean, var, c, &m, &rstd);
      for (int32_t b = 0; b < p->batch; b++) {
        const float *xq = x + (b * channels + c) * spatial;
        float *yq = y + (b * channels + c) * spatial;
        for (int32_t s = 0; s < spatial; s++)
          yq[s] = (xq[s] - m) * rstd * scale[c] + bias[c];
      }
    }
  }
  edge_barrier();
}

void edge_batch_norm_grad_input_f32(const edge_batch_norm_t *p, const float *dy,
                                    const float *x, const float *scale,
                                    const float *mean, const float *var, float *dx) {
  const int32_t spatial = p->spatial, channels = p->channels;
  int32_t begin, end;
  if (!p->training) {
    /* dx = dy * scale * rstd: the statistics are constants */
    edge_split(p->batch * channels, &begin, &end);
    for (int32_t q = begin; q < end; q++) {
      int32_t c = q % channels;
      float rstd = 1.0f / edge_sqrtf(var[c] + p->epsilon);
      const float *dyq = dy + q * spatial;
      float *dxq = dx + q * spatial;
      for (int32_t s = 0; s < spatial; s++) dxq[s] = dyq[s] * scale[c] * rstd;
    }
  } else {
    const int32_t count = p->batch * spatial;
    edge_split(channels, &begin, &end);
    for (int32_t c = begin; c < end; c++) {
      float m, rstd, sum_g = 0.0f, sum_gx = 0.0f;
      channel_moments(p, x, mean, var, c, &m, &rstd);
      for (int32_t b = 0; b < p->batch; b++) {
        int32_t start = (b * channels + c) * spatial;
        for (int32_t s = 0; s < spatial; s++) {
          float g = dy[start + s] * scale[c];
          sum_g += g;
          sum_gx += g * ((x[start + s] - m) * rstd);
        }
      }
      float mean_g = sum_g / (float)count, mean_gx = sum_gx / (float)count;
      for (int32_t b = 0; b < p->batch; b++) {
        int32_t start = (b * channels + c) * spatial;
        for (int32_t s = 0; s < spatial; s++)
          dx[start + s] = norm_input_grad(dy[start + s] * scale[c],
                                          (x[start + s] - m) * rstd, rstd, mean_g, mean_gx);
      }
    }
  }
  edge_barrier();
}

void edge_batch_norm_grad_scale_f32(const edge_batch_norm_t *p, const float *dy,
                                    const float *x, const float *mean, const float *var,
                                    float *dscale) {
  const int32_t spatial = p->spatial, channels = p->channels;
  int32_t begin, end;
  edge_split(channels, &begin, &end);
  for (int32_t c = begin; c < end; c++) {
    float m, rstd, sum = 0.0f;
    channel_moments(p, x, mean, var, c, &m, &rstd);
    for (int32_t b = 0; b < p->batch; b++) {
      int32_t start = (b * channels + c) * spatial;
      float partial = 0.0f;
      for (int32_t s = 0; s < spatial; s++)
        partial += dy[start + s] * ((x[start + s] - m) * rstd);
      sum += partial;
    }
    dscale[c] = sum;
  }
  edge_barrier();
}

/* --- group norm ------------------------------------------------------------------- */

void edge_group_norm_f32(const edge_group_norm_t *p, const float *x, const float *scale,
                         const float *bias, float *y) {
  const int32_t spatial = p->spatial, per_group = p->channels / p->groups;
  const int32_t size = per_group * spatial;
  int32_t begin, end;
  edge_split(p->batch * p->groups, &begin, &end);
  if (size > 0)
    for (int32_t block = begin; block < end; block++) {
      const float *xb = x + block * size;
      float *yb = y + block * size;
      int32_t first = (block % p->groups) * per_group;
      float mean, rstd;
      moments(xb, size, p->epsilon, &mean, &rstd);
      for (int32_t k = 0; k < per_group; k++) {
        const float *xc = xb + k * spatial;
        float *yc = yb + k * spatial;
        float sc = scale[first + k], bi = bias[first + k];
        for (int32_t s = 0; s < spatial; s++) yc[s] = (xc[s] - mean) * rstd * sc + bi;
      }
    }
  edge_barrier();
}

void edge_group_norm_grad_input_f32(const edge_group_norm_t *p, const float *dy,
                                    const float *x, const float *scale, float *dx) {
  const int32_t spatial = p->spatial, per_group = p->channels / p->groups;
  const int32_t size = per_group * spatial;
  int32_t begin, end;
  edge_split(p->batch * p->groups, &begin, &end);
  if (size > 0)
    for (int32_t block = begin; block < end; block++) {
      const float *xb = x + block * size, *dyb = dy + block * size;
      float *dxb = dx + block * size;
      int32_t first = (block % p->groups) * per_group;
      float mean, rstd, sum_g = 0.0f, sum_gx = 0.0f;
      moments(xb, size, p->epsilon, &mean, &rstd);
      for (int32_t k = 0; k < per_group; k++) {
        float sc = scale[first + k];
        for (int32_t s = 0; s < spatial; s++) {
          int32_t i = k * spatial + s;
          float g = dyb[i] * sc;
          sum_g += g;
          sum_gx += g * ((xb[i] - mean) * rstd);
        }
      }
      float mean_g = sum_g / (float)size, mean_gx = sum_gx / (float)size;
      for (int32_t k = 0; k < per_group; k++) {
        float sc = scale[first + k];
        for (int32_t s = 0; s < spatial; s++) {
          int32_t i = k * spatial + s;
          dxb[i] = norm_input_grad(dyb[i] * sc, (xb[i] - mean) * rstd, rstd, mean_g,
                                   mean_gx);
        }
      }
    }
  edge_barrier();
}

void edge_group_norm_grad_scale_f32(const edge_group_norm_t *p, const float *dy,
                                    const float *x, float *dscale) {
  /* This core's channels [begin, end) lie in groups first..last; for each sample, the
   * statistics of each of those groups are computed once. dscale[c] sums the samples'
   * partial sums in sample order, whatever the split. */
  const int32_t spatial = p->spatial, channels = p->channels;
  const int32_t per_group = channels / p->groups, size = per_group * spatial;
  int32_t begin, end;
  edge_split(channels, &begin, &end);
  if (begin < end) {
    if (p->batch == 0)
      for (int32_t c = begin; c < end; c++) dscale[c] = 0.0f;
    int32_t first = begin / per_group, last = (end - 1) / per_group;
    for (int32_t b = 0; b < p->batch; b++)
      for (int32_t g = first; g <= last; g++) {
        int32_t offset = (b * p->groups + g) * size;
        float mean, rstd;
        moments(x + offset, size, p->epsilon, &mean, &rstd);
        int32_t lo = g * per_group > begin ? g * per_group : begin;
        int32_t hi = (g + 1) * per_group < end ? (g + 1) * per_group : end;
        for (int32_t c = lo; c < hi; c++) {
          const float *xc = x + (b * channels + c) * spatial;
          const float *dyc = dy + (b * channels + c) * spatial;
          float partial = 0.0f;
          for (int32_t s = 0; s < spatial; s++) partial += dyc[s] * ((xc[s] - mean) * rstd);
          dscale[c] = b == 0 ? partial : dscale[c] + partial;
        }
      }
  }
  edge_barrier();
}
