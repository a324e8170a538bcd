/* edge-opt runtime: the fp32 products' register blocks in CORE-V assembly, included by
 * edge_kernels_linalg.c on RISC-V with CORE-V in optimised builds (EDGE_GEMM_ASM).
 *
 * One asm statement computes the 4 x 6 and 4 x 4 blocks of every strip of 4 rows of a
 * product (edge_kernels_linalg.c does the columns and rows left over in C): the
 * registers are saved once per product, not per block. The 24 accumulators live in
 * f0..f23 (acc (r, c) in f(6r + c); a 4 x 4 block uses columns 0..3), A's 4 values in
 * f24..f27 and B's alternately in f28 and f29 (a column's 4 multiply-adds run while the
 * next column loads). Each element is computed as in the C blocks: acc = its start (0,
 * bias[j], or C(i, j) when accumulating), acc = fmadd(A(i, k), B(k, j), acc) for k in
 * order, stored; so the two builds agree bit for bit.
 *
 * k is unrolled (by 8 where a pointer runs along k with immediate offsets, else by 4)
 * and a run of k steps enters the unrolled body at the position that leaves a whole
 * number of trips (Duff's device): no single-step tail. Every position of a body has
 * the same size (.option norvc), so the entry is the body's start plus e positions; the
 * pointers that use immediate offsets start e steps early. A^T.B has its k step A's
 * row stride, a runtime value: specialised bodies for sak = 32, 64, 128 (the common
 * widths) read A at immediate offsets too. What the asm reads besides its pointers is
 * a plan in memory (offsets in brackets). */

typedef struct {
  int32_t e;          /* +0 the position where a run enters the unrolled body */
  const void *entry;  /* +4 its address (set by the asm) */
  int32_t run;        /* +8 the counting pointer pa0's advance in a run, bytes */
  int32_t a_skip;     /* +12 A's pointers from the end of a run to the next run */
  int32_t b_skip;     /* +16 B's likewise */
  int32_t a_adjust;   /* +20 A's first pointer at a block's start, from the strip's */
  int32_t b_next;     /* +24 B's column from one block to the next, bytes */
} width_plan_t;

typedef struct {
  const float *a;      /* [0] A's pointer for the first strip (biased for the entry) */
  const float *b;      /* [4] B's column 0 (biased likewise) */
  float *c;            /* [8] C(i, 0) of the first strip */
  const float *bias;   /* [12] bias[0] (mode 1) */
  int32_t mode;        /* [16] 0: acc starts at 0, 1: at bias[j], 2: at C(i, j) */
  int32_t sam4, sbn4;  /* [20], [24] A's row and B's column stride, bytes */
  int32_t scm4;        /* [28] C's row stride, bytes (its columns are adjacent) */
  int32_t a_strip;     /* [32] A from a strip to the next, bytes */
  int32_t reps;        /* [36] runs of k steps per block */
  int32_t strips;      /* [40] strips (scratch: left) */
  int32_t w6, w4;      /* [44], [48] 4 x 6 and 4 x 4 blocks per strip */
  int32_t a_step;      /* [52] A's pointers' advance per step (A^T.B, G), bytes */
  int32_t a_trip;      /* [56] A's pointer's advance per trip (A^T.B specialised) */
  int32_t b_step;      /* [60] B's pointer's advance per step (B's rows), bytes */
  int32_t layout;      /* [64] the body (asm_layout_t) */
  width_plan_t w[2];   /* [68] 4 x 6 blocks, [96] 4 x 4 blocks */
  float *c_strip;      /* [124] scratch: C of the strip */
  const float *bias_j; /* [128] scratch: bias[j] of the block */
} plan_t;

_Static_assert(sizeof(void *) == 4 && sizeof(width_plan_t) == 28 && sizeof(plan_t) == 132,
               "the asm's offsets");

/* The bodies: A.B^T; then, B's rows unit-stride (pb0 += b_step each step), A.B, A^T.B
 * (and specialised for sak = 32, 64, 128), A strided both ways. */
typedef enum { BODY_T, BODY_N, BODY_TN, BODY_TN32, BODY_TN64, BODY_TN128, BODY_G } body_t;

/* --- A step: 4 values of A, W of B, 4W multiply-adds ------------------------------- */

#define FMA4(r0, r1, r2, r3, fb)                                                       \
  "fmadd.s f" #r0 ", f24, " fb ", f" #r0 "\n\t fmadd.s f" #r1 ", f25, " fb ", f" #r1  \
  "\n\t fmadd.s f" #r2 ", f26, " fb ", f" #r2 "\n\t fmadd.s f" #r3 ", f27, " fb        \
  ", f" #r3 "\n\t"
/* The W columns of a step, A in f24..f27: LB(c, c's byte offset in B's row, register,
 * off) loads B(k, j + c) (column 0 is already in f28) */
#define COLUMNS6(LB, off)                                                              \
  LB(1, "4", "f29", off) FMA4(0, 6, 12, 18, "f28") LB(2, "8", "f28", off)              \
  FMA4(1, 7, 13, 19, "f29") LB(3, "12", "f29", off) FMA4(2, 8, 14, 20, "f28")          \
  LB(4, "16", "f28", off) FMA4(3, 9, 15, 21, "f29") LB(5, "20", "f29", off)            \
  FMA4(4, 10, 16, 22, "f28") FMA4(5, 11, 17, 23, "f29")
#define COLUMNS4(LB, off)                                                              \
  LB(1, "4", "f29", off) FMA4(0, 6, 12, 18, "f28") LB(2, "8", "f28", off)              \
  FMA4(1, 7, 13, 19, "f29") LB(3, "12", "f29", off) FMA4(2, 8, 14, 20, "f28")          \
  FMA4(3, 9, 15, 21, "f29")
#define LOAD(reg, off, p) "flw " reg ", " off "(%[" p "])\n\t"
#define ADD(p, by) "add %[" p "], %[" p "], %[" by "]\n\t"
#define ADDI(p, by) "addi %[" p "], %[" p "], " by "\n\t"
#define ADDI_A(by) ADDI("pa0", by) ADDI("pa1", by) ADDI("pa2", by) ADDI("pa3", by)
#define LABEL(name) ".L" name "%=:\n\t"
#define POSITION(body, W, p) LABEL(body #W "p" #p)

/* A.B^T: A's rows and B's columns along k, 4 + W pointers at byte offset `off` */
#define LB_T(c, bytes, reg, off) LOAD(reg, off, "pb" #c)
#define STEP_T(W, off)                                                                 \
  LOAD("f28", off, "pb0") LOAD("f24", off, "pa0") LOAD("f25", off, "pa1")              \
  LOAD("f26", off, "pa2") LOAD("f27", off, "pa3") COLUMNS##W(LB_T, off)
#define ADDI_B6(by) ADDI("pb0", by) ADDI("pb1", by) ADDI("pb2", by) ADDI("pb3", by)     \
  ADDI("pb4", by) ADDI("pb5", by)
#define ADDI_B4(by) ADDI("pb0", by) ADDI("pb1", by) ADDI("pb2", by) ADDI("pb3", by)
/* B's row k at pb0 (its columns 4 bytes apart), then pb0 += b_step */
#define LB_ROW(c, bytes, reg, off) LOAD(reg, bytes, "pb0")
#define ROW_B(W) LOAD("f28", "0", "pb0") COLUMNS##W(LB_ROW, _) ADD("pb0", "rb")
/* A.B: A's rows along k at `off` */
#define STEP_N(W, off)                                                                 \
  LOAD("f24", off, "pa0") LOAD("f25", off, "pa1") LOAD("f26", off, "pa2")              \
  LOAD("f27", off, "pa3") ROW_B(W)
/* A^T.B: A's column k at pa0 + `off` (its rows 4 bytes apart) */
#define STEP_TN(W, off)                                                                \
  LOAD("f24", off "+0", "pa0") LOAD("f25", off "+4", "pa0")                            \
  LOAD("f26", off "+8", "pa0") LOAD("f27", off "+12", "pa0") ROW_B(W)
/* A strided both ways (a convolution's weights): 4 row pointers += a_step */
#define STEP_G(W)                                                                      \
  LOAD("f24", "0", "pa0") LOAD("f25", "0", "pa1") LOAD("f26", "0", "pa2")              \
  LOAD("f27", "0", "pa3") ROW_B(W) ADD("pa0", "ra") ADD("pa1", "ra") ADD("pa2", "ra")  \
  ADD("pa3", "ra")

/* The bodies: positions p0, p1, ... of equal size, then the pointers' advance per trip;
 * back to the block's code at the end of the run */
#define TRIP_END(body, W)                                                              \
  "bne %[pa0], %[end], .L" body #W "p0%=\n\t j .Lrun_end" #W "%=\n\t"
#define BODY_8(body, W, STEP, trip)                                                    \
  POSITION(body, W, 0) STEP(W, "0") POSITION(body, W, 1) STEP(W, "4")                  \
  STEP(W, "8") STEP(W, "12") STEP(W, "16") STEP(W, "20") STEP(W, "24") STEP(W, "28")   \
  trip TRIP_END(body, W)
#define BODY_T(W) BODY_8("t", W, STEP_T, ADDI_A("32") ADDI_B##W("32"))
#define BODY_N(W) BODY_8("n", W, STEP_N, ADDI_A("32"))
#define STEP_TN_RUNTIME(W) STEP_TN(W, "0") ADD("pa0", "ra")
#define BODY_TN(W)                                                                     \
  POSITION("tn", W, 0) STEP_TN_RUNTIME(W) POSITION("tn", W, 1) STEP_TN_RUNTIME(W)      \
  STEP_TN_RUNTIME(W) STEP_TN_RUNTIME(W) TRIP_END("tn", W)
/* sak = S floats: step p of a trip reads A at (p - 4) 4S bytes from pa0 (within the
 * immediates' +-2 KiB for S <= 128), pa0 += 32S per trip */
#define BODY_TNS(W, S)                                                                 \
  POSITION("tn" #S "_", W, 0) STEP_TN(W, "-4*4*" #S) POSITION("tn" #S "_", W, 1)       \
  STEP_TN(W, "-3*4*" #S) STEP_TN(W, "-2*4*" #S) STEP_TN(W, "-1*4*" #S)                 \
  STEP_TN(W, "0") STEP_TN(W, "1*4*" #S) STEP_TN(W, "2*4*" #S) STEP_TN(W, "3*4*" #S)    \
  ADD("pa0", "rl") TRIP_END("tn" #S "_", W)
#define BODY_G(W)                                                                      \
  POSITION("g", W, 0) STEP_G(W) POSITION("g", W, 1) STEP_G(W) STEP_G(W) STEP_G(W)      \
  TRIP_END("g", W)

/* --- A block's start and finish ------------------------------------------------------ */

#define BELOW6(OP) OP(6, 7, 8, 9, 10, 11) OP(12, 13, 14, 15, 16, 17) OP(18, 19, 20, 21, 22, 23)
#define BELOW4(OP) OP(6, 7, 8, 9) OP(12, 13, 14, 15) OP(18, 19, 20, 21)
#define ROWS6(OP) OP(0, 1, 2, 3, 4, 5) BELOW6(OP)
#define ROWS4(OP) OP(0, 1, 2, 3) BELOW4(OP)
#define ZERO(r) "fmv.w.x f" #r ", zero\n\t"
#define ZERO6(a, b, c, d, e, f) ZERO(a) ZERO(b) ZERO(c) ZERO(d) ZERO(e) ZERO(f)
#define ZERO4(a, b, c, d) ZERO(a) ZERO(b) ZERO(c) ZERO(d)
/* row 0 of the accumulators into a row */
#define COPY(r, c) "fmv.s f" #r ", f" #c "\n\t"
#define COPY6(a, b, c, d, e, f) COPY(a, 0) COPY(b, 1) COPY(c, 2) COPY(d, 3) COPY(e, 4)  \
  COPY(f, 5)
#define COPY4(a, b, c, d) COPY(a, 0) COPY(b, 1) COPY(c, 2) COPY(d, 3)
/* a row of C at t (then t += u, C's row stride) from or into the accumulators */
#define MEM(op, r, off) op " f" #r ", " off "(%[t])\n\t"
#define NEXT_ROW "add %[t], %[t], %[u]\n\t"
#define STORE6(a, b, c, d, e, f)                                                       \
  MEM("fsw", a, "0") MEM("fsw", b, "4") MEM("fsw", c, "8") MEM("fsw", d, "12")         \
  MEM("fsw", e, "16") MEM("fsw", f, "20") NEXT_ROW
#define STORE4(a, b, c, d)                                                             \
  MEM("fsw", a, "0") MEM("fsw", b, "4") MEM("fsw", c, "8") MEM("fsw", d, "12") NEXT_ROW
#define LOAD6(a, b, c, d, e, f)                                                        \
  MEM("flw", a, "0") MEM("flw", b, "4") MEM("flw", c, "8") MEM("flw", d, "12")         \
  MEM("flw", e, "16") MEM("flw", f, "20") NEXT_ROW
#define LOAD4(a, b, c, d)                                                              \
  MEM("flw", a, "0") MEM("flw", b, "4") MEM("flw", c, "8") MEM("flw", d, "12") NEXT_ROW
#define BIAS6                                                                          \
  MEM("flw", 0, "0") MEM("flw", 1, "4") MEM("flw", 2, "8") MEM("flw", 3, "12")         \
  MEM("flw", 4, "16") MEM("flw", 5, "20")
#define BIAS4 MEM("flw", 0, "0") MEM("flw", 1, "4") MEM("flw", 2, "8") MEM("flw", 3, "12")
#define FIELD(reg, offset) "lw %[" reg "], " #offset "(%[plan])\n\t"
#define STORE_FIELD(reg, offset) "sw %[" reg "], " #offset "(%[plan])\n\t"

/* The accumulators' start by mode: 0, bias[j] (row 0 loaded, copied to the others) or
 * C's block */
#define START(W)                                                                       \
  FIELD("t", 16) "beqz %[t], .Lzero" #W "%=\n\t addi %[t], %[t], -1\n\t"              \
  "bnez %[t], .Lold" #W "%=\n\t" FIELD("t", 128) BIAS##W                              \
  "addi %[t], %[t], 4*" #W "\n\t" STORE_FIELD("t", 128) BELOW##W(COPY##W)             \
  "j .Lstarted" #W "%=\n\t"                                                           \
  LABEL("zero" #W) ROWS##W(ZERO##W) "j .Lstarted" #W "%=\n\t"                         \
  LABEL("old" #W) "mv %[t], %[cblk]\n\t" FIELD("u", 28) ROWS##W(LOAD##W)              \
  LABEL("started" #W)

/* A block of width W (its plan at R): pointers from the strip's A and the block's B
 * column, the start, the runs (each enters the body through the entry), the stores */
#define BLOCK(W, R, B_START, B_SKIP)                                                   \
  FIELD("t", R + 20) "add %[pa0], %[astrip], %[t]\n\t add %[pa1], %[pa0], %[sa]\n\t"   \
  "add %[pa2], %[pa1], %[sa]\n\t add %[pa3], %[pa2], %[sa]\n\t" B_START              \
  FIELD("t", R + 24) "add %[bcol], %[bcol], %[t]\n\t" START(W) FIELD("runs", 36)      \
  LABEL("run" #W) FIELD("t", R + 8) "add %[end], %[pa0], %[t]\n\t" FIELD("t", R + 4)   \
  "jr %[t]\n\t" LABEL("run_end" #W) "addi %[runs], %[runs], -1\n\t"                   \
  "beqz %[runs], .Lfinish" #W "%=\n\t" FIELD("t", R + 12) ADD("pa0", "t")              \
  ADD("pa1", "t") ADD("pa2", "t") ADD("pa3", "t") FIELD("t", R + 16) B_SKIP            \
  "j .Lrun" #W "%=\n\t" LABEL("finish" #W) "mv %[t], %[cblk]\n\t" FIELD("u", 28)      \
  ROWS##W(STORE##W) "addi %[cblk], %[cblk], 4*" #W "\n\t"

/* The strips: their blocks of 6 columns, then of 4; A's pointer on, B's back */
#define STRIPS(B_START6, B_START4, B_SKIP6, B_SKIP4)                                   \
  FIELD("astrip", 0) FIELD("bcol", 4) FIELD("cblk", 8) STORE_FIELD("cblk", 124)        \
  FIELD("t", 12) STORE_FIELD("t", 128) FIELD("sa", 20)                                 \
  LABEL("strip") FIELD("blocks", 44) "beqz %[blocks], .Lnarrow%=\n\t"                \
  LABEL("wide") BLOCK(6, 68, B_START6, B_SKIP6)                                        \
  "addi %[blocks], %[blocks], -1\n\t bnez %[blocks], .Lwide%=\n\t"                     \
  LABEL("narrow") FIELD("blocks", 48) "beqz %[blocks], .Lstrip_end%=\n\t"              \
  LABEL("narrow_block") BLOCK(4, 96, B_START4, B_SKIP4)                                \
  "addi %[blocks], %[blocks], -1\n\t bnez %[blocks], .Lnarrow_block%=\n\t"             \
  LABEL("strip_end") FIELD("t", 40) "addi %[t], %[t], -1\n\t beqz %[t], .Ldone%=\n\t" \
  STORE_FIELD("t", 40) FIELD("t", 32) "add %[astrip], %[astrip], %[t]\n\t"           \
  FIELD("bcol", 4) FIELD("t", 124) FIELD("u", 28) "slli %[u], %[u], 2\n\t"             \
  "add %[cblk], %[t], %[u]\n\t" STORE_FIELD("cblk", 124) FIELD("t", 12)                \
  STORE_FIELD("t", 128) "j .Lstrip%=\n\t"

/* The entry of a body into the width plan at R: p0 + e (p1 - p0) */
#define ENTRY(body, W, R)                                                              \
  "la %[t], .L" body #W "p0%=\n\t la %[u], .L" body #W "p1%=\n\t"                      \
  "sub %[u], %[u], %[t]\n\t" FIELD("end", R) "mul %[u], %[u], %[end]\n\t"              \
  "add %[t], %[t], %[u]\n\t" STORE_FIELD("t", R + 4)

#define BODIES_BEGIN ".option push\n\t .option norvc\n\t"
#define BODIES_END ".option pop\n\t" LABEL("done")

#define CLOBBERS                                                                       \
  "memory", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11",  \
      "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22",     \
      "f23", "f24", "f25", "f26", "f27", "f28", "f29"

/* A.B^T: B's W column pointers from the block's column */
#define B_COLUMNS4                                                                     \
  "mv %[pb0], %[bcol]\n\t add %[pb1], %[pb0], %[sb]\n\t add %[pb2], %[pb1], %[sb]\n\t"  \
  "add %[pb3], %[pb2], %[sb]\n\t"
#define B_COLUMNS6 B_COLUMNS4 "add %[pb4], %[pb3], %[sb]\n\t add %[pb5], %[pb4], %[sb]\n\t"
#define B_SKIP4 ADD("pb0", "t") ADD("pb1", "t") ADD("pb2", "t") ADD("pb3", "t")
#define B_SKIP6 B_SKIP4 ADD("pb4", "t") ADD("pb5", "t")

static void asm_strips_t(plan_t *plan) {
  const float *pa0, *pa1, *pa2, *pa3, *pb0, *pb1, *pb2, *pb3, *pb4, *pb5, *astrip, *bcol;
  float *cblk;
  int32_t blocks, runs, t, u, sa, sb;
  const float *end;
  __asm__ volatile(
      FIELD("sb", 24) ENTRY("t", 6, 68) ENTRY("t", 4, 96)
      STRIPS(B_COLUMNS6, B_COLUMNS4, B_SKIP6, B_SKIP4)
      BODIES_BEGIN BODY_T(6) BODY_T(4) BODIES_END
      : [pa0] "=&r"(pa0), [pa1] "=&r"(pa1), [pa2] "=&r"(pa2), [pa3] "=&r"(pa3),
        [pb0] "=&r"(pb0), [pb1] "=&r"(pb1), [pb2] "=&r"(pb2), [pb3] "=&r"(pb3),
        [pb4] "=&r"(pb4), [pb5] "=&r"(pb5), [astrip] "=&r"(astrip), [bcol] "=&r"(bcol),
        [cblk] "=&r"(cblk), [blocks] "=&r"(blocks), [runs] "=&r"(runs), [t] "=&r"(t),
        [u] "=&r"(u), [sa] "=&r"(sa), [sb] "=&r"(sb), [end] "=&r"(end)
      : [plan] "r"(plan)
      : CLOBBERS);
}

/* B's rows unit-stride: one pointer */
#define B_ROW "mv %[pb0], %[bcol]\n\t"
#define B_SKIP_ROW ADD("pb0", "t")
#define ENTRIES(body6, body4) ENTRY(body6, 6, 68) ENTRY(body4, 4, 96) "j .Lentered%=\n\t"

static void asm_strips_rows(plan_t *plan) {
  const float *pa0, *pa1, *pa2, *pa3, *pb0, *astrip, *bcol;
  float *cblk;
  int32_t blocks, runs, t, u, sa, ra, rl, rb;
  const float *end;
  __asm__ volatile(
      FIELD("ra", 52) FIELD("rl", 56) FIELD("rb", 60) FIELD("t", 64)
      "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_n%=\n\t"
      "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_tn%=\n\t"
      "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_tn32%=\n\t"
      "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_tn64%=\n\t"
      "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_tn128%=\n\t"
      ENTRIES("g", "g") LABEL("body_n") ENTRIES("n", "n")
      LABEL("body_tn") ENTRIES("tn", "tn") LABEL("body_tn32") ENTRIES("tn32_", "tn")
      LABEL("body_tn64") ENTRIES("tn64_", "tn") LABEL("body_tn128") ENTRIES("tn128_", "tn")
      LABEL("entered")
      STRIPS(B_ROW, B_ROW, B_SKIP_ROW, B_SKIP_ROW)
      BODIES_BEGIN BODY_N(6) BODY_N(4) BODY_TN(6) BODY_TN(4) BODY_TNS(6, 32)
      BODY_TNS(6, 64) BODY_TNS(6, 128) BODY_G(6) BODY_G(4) BODIES_END
      : [pa0] "=&r"(pa0), [pa1] "=&r"(pa1), [pa2] "=&r"(pa2), [pa3] "=&r"(pa3),
        [pb0] "=&r"(pb0), [astrip] "=&r"(astrip), [bcol] "=&r"(bcol),
        [cblk] "=&r"(cblk), [blocks] "=&r"(blocks), [runs] "=&r"(runs), [t] "=&r"(t),
        [u] "=&r"(u), [sa] "=&r"(sa), [ra] "=&r"(ra), [rl] "=&r"(rl), [rb] "=&r"(rb),
        [end] "=&r"(end)
      : [plan] "r"(plan)
      : CLOBBERS);
}

#undef FMA4
#undef COLUMNS6
#undef COLUMNS4
#undef LOAD
#undef ADD
#undef ADDI
#undef ADDI_A
#undef LABEL
#undef POSITION
#undef LB_T
#undef STEP_T
#undef ADDI_B6
#undef ADDI_B4
#undef LB_ROW
#undef ROW_B
#undef STEP_N
#undef STEP_TN
#undef STEP_G
#undef TRIP_END
#undef BODY_8
#undef BODY_T
#undef BODY_N
#undef STEP_TN_RUNTIME
#undef BODY_TN
#undef BODY_TNS
#undef BODY_G
#undef BELOW6
#undef BELOW4
#undef BIAS6
#undef BIAS4
#undef ROWS6
#undef ROWS4
#undef ZERO
#undef ZERO6
#undef ZERO4
#undef COPY
#undef COPY6
#undef COPY4
#undef MEM
#undef NEXT_ROW
#undef STORE6
#undef STORE4
#undef LOAD6
#undef LOAD4
#undef FIELD
#undef STORE_FIELD
#undef START
#undef BLOCK
#undef STRIPS
#undef ENTRY
#undef BODIES_BEGIN
#undef BODIES_END
#undef CLOBBERS
#undef B_COLUMNS4
#undef B_COLUMNS6
#undef B_SKIP4
#undef B_SKIP6
#undef B_ROW
#undef B_SKIP_ROW
#undef ENTRIES
