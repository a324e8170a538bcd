/* edge-opt runtime: the execution platform.
 *
 * A PULP cluster runs one team of cores; every core executes the same kernel sequence,
 * each kernel splits its work by core id and ends with a barrier. This header gives that
 * model three implementations:
 *   - EDGE_TARGET_PULP: the PULP/GAP9 SDK (pmsis): pi_core_id, team fork and barrier,
 *     section macros PI_L1/PI_L2/PI_L3 from the SDK;
 *   - a hosted build (default): POSIX threads, so that data races really race;
 *   - EDGE_BARE (set automatically for freestanding RISC-V without the SDK): one core;
 *   - EDGE_EMULATED (the profiler, edge_opt/backends/c/profile.py): a bare RV32 build
 *     whose team the emulator runs, core by core between barriers: it intercepts
 *     edge_fork, edge_barrier and edge_profile_call and sets edge_emulated_core.
 */
#ifndef EDGE_PLATFORM_H
#define EDGE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#if !defined(EDGE_TARGET_PULP) && !defined(EDGE_BARE) && !defined(EDGE_EMULATED) && \
    defined(__riscv) && !defined(__linux__)
#define EDGE_BARE 1
#endif

#if defined(EDGE_TARGET_PULP)
#include "pmsis.h"
#define EDGE_MAX_CORES 8
static inline int edge_core_id(void) { return pi_core_id(); }
#ifndef NUM_CORES
#define NUM_CORES 8
#endif
static inline int edge_num_cores(void) { return pi_cl_team_nb_cores(); }
static inline void edge_barrier(void) { pi_cl_team_barrier(); }
static inline void edge_fork(void (*body)(void *), void *arg) {
  pi_cl_team_fork(NUM_CORES, body, arg);
}
#else
/* Section macros of the PULP SDK: empty off-target. */
#ifndef PI_L1
#define PI_L1
#endif
#ifndef PI_CL_L1
#define PI_CL_L1
#endif
#ifndef PI_L2
#define PI_L2
#endif
#ifndef PI_L3
#define PI_L3
#endif
#define EDGE_MAX_CORES 8
int edge_core_id(void);
int edge_num_cores(void);
void edge_barrier(void);
/* Runs body(arg) on every core of the team and returns when all are done. */
void edge_fork(void (*body)(void *), void *arg);
/* Team size for the next forks (hosted: threads, 1..EDGE_MAX_CORES; bare: 1). */
void edge_set_num_cores(int cores);
#endif

#if defined(EDGE_EMULATED)
/* Marks the start of kernel call `id` (generated code built for the profiler). */
void edge_profile_call(int32_t id);
/* Where a core of the emulated team returns when its body is done. */
void edge_emulated_join(void);
#endif

/* The first error a kernel met since the last edge_clear_error(); code EDGE_OK: none.
 * Kernels do not stop on bad data (there is no one to return to inside a team): they
 * make the affected results NaN and record what was wrong, for the caller to check
 * after a step.
 *   EDGE_ERROR_LABEL: a class label outside [0, limit): labels[index] = value. The loss
 *   and that row's gradient are NaN, so a training step with it would make the
 *   parameters NaN: check edge_last_error() before trusting the step. */
typedef struct {
  int32_t code, index, value, limit;
} edge_error_t;
enum { EDGE_OK = 0, EDGE_ERROR_LABEL = 1 };
edge_error_t edge_last_error(void);
void edge_clear_error(void);
/* Records an error unless one is recorded already; one core at a time (core 0). */
void edge_record_error(int32_t code, int32_t index, int32_t value, int32_t limit);

/* The share [*begin, *end) of `count` work items of this core: contiguous chunks in
 * core order, so a result never depends on the number of cores. */
static inline void edge_split(int32_t count, int32_t *begin, int32_t *end) {
  int32_t cores = edge_num_cores();
  int32_t chunk = (count + cores - 1) / cores;
  int32_t first = chunk * edge_core_id();
  *begin = first < count ? first : count;
  *end = first + chunk < count ? first + chunk : count;
}

#endif /* EDGE_PLATFORM_H */
