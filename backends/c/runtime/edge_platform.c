/* edge-opt runtime: the hosted (POSIX threads) and bare (single core) platforms.
 * On the PULP SDK, edge_platform.h maps the team to pmsis and this file only keeps the
 * error record. */
#include "edge_platform.h"

/* One record for the team, written by one core at a time (kernels record from core 0,
 * between barriers): no atomics, which the RV32 targets without the A extension lack. */
static edge_error_t last_error;

edge_error_t edge_last_error(void) { return last_error; }

void edge_clear_error(void) { last_error.code = EDGE_OK; }

void edge_record_error(int32_t code, int32_t index, int32_t value, int32_t limit) {
  if (last_error.code != EDGE_OK) return;
  last_error.index = index;
  last_error.value = value;
  last_error.limit = limit;
  last_error.code = code;
}

#if defined(EDGE_EMULATED)
/* The emulator writes these, and intercepts the functions below at their first
 * instruction (their bodies are what a single core would do without it). */
volatile int32_t edge_emulated_core = 0, edge_emulated_cores = 1;
int edge_core_id(void) { return edge_emulated_core; }
int edge_num_cores(void) { return edge_emulated_cores; }
__attribute__((noinline)) void edge_barrier(void) { __asm__ volatile(""); }
__attribute__((noinline)) void edge_fork(void (*body)(void *), void *arg) { body(arg); }
void edge_set_num_cores(int cores) { edge_emulated_cores = cores; }
__attribute__((noinline)) void edge_profile_call(int32_t id) { __asm__ volatile("" ::"r"(id)); }
__attribute__((noinline)) void edge_emulated_join(void) {
  for (;;) __asm__ volatile("");
}

#elif defined(EDGE_BARE)
int edge_core_id(void) { return 0; }
int edge_num_cores(void) { return 1; }
void edge_barrier(void) {}
void edge_fork(void (*body)(void *), void *arg) { body(arg); }
void edge_set_num_cores(int cores) { (void)cores; }

#elif !defined(EDGE_TARGET_PULP)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int team_size = 1;
static pthread_barrier_t team_barrier;
static _Thread_local int thread_core_id = 0;

struct edge_thread {
  int core;
  void (*body)(void *);
  void *arg;
};

int edge_core_id(void) { return thread_core_id; }
int edge_num_cores(void) { return team_size; }

void edge_barrier(void) {
  if (team_size > 1) pthread_barrier_wait(&team_barrier);
}

void edge_set_num_cores(int cores) {
  if (cores < 1 || cores > EDGE_MAX_CORES) {
    fprintf(stderr, "edge runtime: %d cores requested, must be 1..%d\n", cores,
            EDGE_MAX_CORES);
    exit(2);
  }
  team_size = cores;
}

static void *run_core(void *data) {
  struct edge_thread *t = data;
  thread_core_id = t->core;
  t->body(t->arg);
  return NULL;
}

void edge_fork(void (*body)(void *), void *arg) {
  pthread_t threads[EDGE_MAX_CORES];
  struct edge_thread work[EDGE_MAX_CORES];
  if (team_size > 1) pthread_barrier_init(&team_barrier, NULL, (unsigned)team_size);
  for (int core = 1; core < team_size; core++) {
    work[core] = (struct edge_thread){core, body, arg};
    if (pthread_create(&threads[core], NULL, run_core, &work[core]) != 0) {
      fprintf(stderr, "edge runtime: cannot start thread %d\n", core);
      exit(2);
    }
  }
  thread_core_id = 0;
  body(arg);
  for (int core = 1; core < team_size; core++) pthread_join(threads[core], NULL);
  if (team_size > 1) pthread_barrier_destroy(&team_barrier);
}
#endif
