/* edge-opt runtime: losses and optimizer updates (see edge_kernels_train.h). */
#include "edge_runtime.h"

/* A partial sum covers at most this many terms before it is added to the total: the
 * rounding error of a long float sum then grows with n / BLOCK + BLOCK, not n. */
#define SUM_BLOCK 256

/* e^x - 1, accurate for small |x| as well, where edge_expf(x) - 1 cancels: there, the
 * Taylor series to x^9 / 9! (truncation < 6e-10 relative for |x| < 1/2). */
static inline float expm1_(float x) {
  if (x > -0.5f && x < 0.5f) {
    float t = 1.0f + x * (1.0f / 9.0f);
    t = 1.0f + x * (1.0f / 8.0f) * t;
    t = 1.0f + x * (1.0f / 7.0f) * t;
    t = 1.0f + x * (1.0f / 6.0f) * t;
    t = 1.0f + x * (1.0f / 5.0f) * t;
    t = 1.0f + x * (1.0f / 4.0f) * t;
    t = 1.0f + x * (1.0f / 3.0f) * t;
    t = 1.0f + x * 0.5f * t;
    return x * t;
  }
  return edge_expf(x) - 1.0f;
}

static inline float row_max(const float *x, int32_t n) {
  float m = -__builtin_inff();
  for (int32_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

static inline float row_sum_exp(const float *x, int32_t n, float max) {
  float s = 0.0f;
  for (int32_t i = 0; i < n; i++) s += edge_expf(x[i] - max);
  return s;
}

void edge_cross_entropy_f32(const edge_cross_entropy_t *p, const float *logits,
                            const int32_t *labels, float *loss) {
  if (edge_core_id() == 0) {
    int32_t classes = p->classes;
    float total = 0.0f;
    for (int32_t r = 0; r < p->rows; r++) {
      const float *x = logits + r * classes;
      int32_t label = labels[r];
      if (label < 0 || label >= classes) {
        edge_record_error(EDGE_ERROR_LABEL, r, label, classes);
        total = __builtin_nanf("");
        continue;
      }
      float max = row_max(x, classes);
      total -= (x[label] - max) - edge_logf(row_sum_exp(x, classes, max));
    }
    *loss = p->mean ? total / (float)p->rows : total;
  }
  edge_barrier();
}

void edge_cross_entropy_grad_f32(const edge_cross_entropy_t *p, const float *logits,
                                 const int32_t *labels, float *grad) {
  int32_t classes = p->classes, begin, end;
  float scale = p->mean ? 1.0f / (float)p->rows : 1.0f;
  edge_split(p->rows * classes, &begin, &end);
  /* Row by row: the row's statistics over all of it (in the same order on every core),
   * the core's columns [c0, c1) of it written. */
  while (begin < end) {
    int32_t r = begin / classes, c0 = begin % classes;
    int32_t c1 = end - r * classes < classes ? end - r * classes : classes;
    const float *x = logits + r * classes;
    float *g = grad + r * classes;
    float max = row_max(x, classes), sum = 0.0f;
    int32_t c = 0;
    for (; c < c0; c++) sum += edge_expf(x[c] - max);
    for (; c < c1; c++) {
      g[c] = edge_expf(x[c] - max);
      sum += g[c];
    }
    for (; c < classes; c++) sum += edge_expf(x[c] - max);
    int32_t label = labels[r];
    int32_t valid = label >= 0 && label < classes;
    for (c = c0; c < c1; c++) {
      float v = g[c] / sum;
      if (c == label) v -= 1.0f;
      g[c] = valid ? v * scale : __builtin_nanf("");
    }
    begin = r * classes + c1;
  }
  edge_barrier();
}

void edge_mse_f32(const edge_mse_t *p, const float *prediction, const float *target,
                  float *loss) {
  if (edge_core_id() == 0) {
    int32_t count = p->count;
    float total = 0.0f;
    for (int32_t i = 0; i < count; i += SUM_BLOCK) {
      int32_t stop = count - i < SUM_BLOCK ? count : i + SUM_BLOCK;
      float block = 0.0f;
      for (int32_t j = i; j < stop; j++) {
        float d = prediction[j] - target[j];
        block += d * d;
      }
      total += block;
    }
    *loss = p->mean ? total / (float)count : total;
  }
  edge_barrier();
}

void edge_mse_grad_f32(const edge_mse_t *p, const float *prediction, const float *target,
                       float *grad) {
  float scale = p->mean ? 1.0f / (float)p->count : 1.0f;
  int32_t begin, end;
  edge_split(p->count, &begin, &end);
  for (int32_t i = begin; i < end; i++)
    grad[i] = 2.0f * (prediction[i] - target[i]) * scale;
  edge_barrier();
}

void edge_sgd_f32(const edge_sgd_t *p, const float *param, const float *grad,
                  float *new_param) {
  float lr = p->lr, decay = p->weight_decay;
  int32_t begin, end;
  edge_split(p->count, &begin, &end);
  for (int32_t i = begin; i < end; i++) {
    float w = param[i];
    new_param[i] = w - lr * (grad[i] + decay * w);
  }
  edge_barrier();
}

/* SGD of rows [first, first + count) of w (row elements each) by their gradient. */
static void sgd_rows(const edge_sgd_t *s, int32_t first, int32_t count, int32_t row,
                     const float *grad, const float *w, float *new_w) {
  /* field by field: a struct copy may become a memcpy call on the target */
  edge_sgd_t rows = {count * row, s->lr, s->weight_decay};
  edge_sgd_f32(&rows, w + first * row, grad, new_w + first * row);
}

void edge_linear_grad_weight_sgd_f32(const edge_linear_t *p, const edge_sgd_t *s,
                                     int32_t chunk_rows, const float *dy, const float *x,
                                     const float *w, float *new_w, float *workspace) {
  for (int32_t first = 0; first < p->out_features; first += chunk_rows) {
    int32_t count = p->out_features - first < chunk_rows ? p->out_features - first
                                                         : chunk_rows;
    edge_linear_grad_weight_rows_f32(p, dy, x, first, count, workspace);
    sgd_rows(s, first, count, p->in_features, workspace, w, new_w);
  }
}

/* dw for output channels [first, first + count) into dw_rows, one element per
 * accumulation over (batch, output row, output column) in that order; any batch. */
static void conv_grad_weight_rows(const edge_conv2d_t *p, const float *dy, const float *x,
                                  int32_t first, int32_t count, float *dw_rows) {
  int32_t taps = p->kh * p->kw, row = p->c * taps, begin, end;
  edge_split(count * row, &begin, &end);
  for (int32_t e = begin; e < end; e++) {
    int32_t k = first + e / row, q = e % row / taps, i = e % taps / p->kw, j = e % p->kw;
    float sum = 0.0f;
    for (int32_t b = 0; b < p->n; b++) {
      const float *d = dy + ((int64_t)b * p->o + k) * p->oh * p->ow;
      const float *plane = x + ((int64_t)b * p->c + q) * p->h * p->w;
      for (int32_t y = 0; y < p->oh; y++) {
        int32_t r = y * p->stride[0] + i * p->dilation[0] - p->padding[0];
        if (r < 0 || r >= p->h) continue;
        for (int32_t c = 0; c < p->ow; c++) {
          int32_t col = c * p->stride[1] + j * p->dilation[1] - p->padding[1];
          if (col >= 0 && col < p->w) sum += d[y * p->ow + c] * plane[r * p->w + col];
        }
      }
    }
    dw_rows[e] = sum;
  }
  edge_barrier();
}

void edge_conv2d_grad_weight_sgd_f32(const edge_conv2d_t *p, const edge_sgd_t *s,
                                     int32_t chunk_rows, const float *dy, const float *x,
                                     const float *w, float *new_w, float *workspace) {
  int32_t row = p->c * p->kh * p->kw;
  for (int32_t first = 0; first < p->o; first += chunk_rows) {
    int32_t count = p->o - first < chunk_rows ? p->o - first : chunk_rows;
    if (p->n == 1) {
      /* one sample: the chunk's dy is a contiguous channel slice, the convolution
       * with `count` output channels (the usual kernel) */
      edge_conv2d_t slice = {
          p->n, p->c, p->h, p->w, count, p->kh, p->kw, p->oh, p->ow,
          {p->stride[0], p->stride[1]},
          {p->padding[0], p->padding[1], p->padding[2], p->padding[3]},
          {p->dilation[0], p->dilation[1]}, p->groups};
      edge_conv2d_grad_weight_f32(&slice, dy + (int64_t)first * p->oh * p->ow, x,
                                  workspace);
    } else {
      conv_grad_weight_rows(p, dy, x, first, count, workspace);
    }
    sgd_rows(s, first, count, row, workspace, w, new_w);
  }
}

void edge_sgd_momentum_f32(const edge_sgd_momentum_t *p, const float *param,
                           const float *grad, const float *buffer, float *new_param,
                           float *new_buffer) {
  float lr = p->lr, momentum = p->momentum, decay = p->weight_decay;
  int32_t begin, end;
  edge_split(p->count, &begin, &end);
  if (p->nesterov) {
    for (int32_t i = begin; i < end; i++) {
      float w = param[i], g = grad[i] + decay * w;
      float b = momentum * buffer[i] + g;
      new_buffer[i] = b;
      new_param[i] = w - lr * (g + momentum * b);
    }
  } else {
    for (int32_t i = begin; i < end; i++) {
      float w = param[i], g = grad[i] + decay * w;
      float b = momentum * buffer[i] + g;
      new_buffer[i] = b;
      new_param[i] = w - lr * b;
    }
  }
  edge_barrier();
}

void edge_adam_f32(const edge_adam_t *p, const float *param, const float *grad,
                   const float *exp_avg, const float *exp_avg_sq, const float *step,
                   float *new_param, float *new_exp_avg, float *new_exp_avg_sq) {
  float t = *step;
  float correction1 = -expm1_(t * p->log_beta1), correction2 = -expm1_(t * p->log_beta2);
  float step_size = p->lr / correction1, root_scale = 1.0f / edge_sqrtf(correction2);
  float beta1 = p->beta1, beta2 = p->beta2, epsilon = p->epsilon, decay = p->weight_decay;
  float rest1 = p->one_minus_beta1, rest2 = p->one_minus_beta2;
  int32_t begin, end;
  edge_split(p->count, &begin, &end);
  for (int32_t i = begin; i < end; i++) {
    float w = param[i], g = grad[i] + decay * w;
    float m = beta1 * exp_avg[i] + rest1 * g;
    float v = beta2 * exp_avg_sq[i] + rest2 * g * g;
    new_exp_avg[i] = m;
    new_exp_avg_sq[i] = v;
    new_param[i] = w - step_size * m / (edge_sqrtf(v) * root_scale + epsilon);
  }
  edge_barrier();
}
