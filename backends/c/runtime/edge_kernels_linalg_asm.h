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
 * pointers that use immediate offsets start e steps early. Where an operand's k step
 * is a runtime stride (B's rows in A.B, A's columns in A^T.B) or A.B^T's row pointers
 * could be one, bodies specialised for the strides 32, 64 and 128 floats (the common
 * widths) read at immediate offsets too; other strides advance a pointer per step. The
 * asm functions are not inlined: one copy, registers saved once per product. What the
 * asm reads besides its pointers is a plan in memory (offsets in brackets). */

typedef struct {
  int32_t e;          /* +0 the position where a run enters the unrolled body */
  const void *entry;  /* +4 its address (set by the asm) */
  int32_t run;        /* +8 the counting pointer pa0's advance in a run, bytes */
  int32_t a_skip;     /* +12 A's pointers from the end of a run to the next run */
  int32_t b_skip;     /* +16 B's likewise */
  int32_t a_adjust;   /* +20 A's first pointer at a block's start, from the strip's */
  int32_t b_adjust;   /* +24 B's pointer at a block's start, from its column (B's rows) */
  int32_t b_next;     /* +28 B's column from one block to the next, bytes */
} width_plan_t;

typedef struct {
  const float *a;      /* [0] A's pointer for the first strip (biased for the entry) */
  const float *b;      /* [4] B's column 0 (A.B^T: biased likewise) */
  float *c;            /* [8] C(i, 0) of the first strip */
  const float *bias;   /* [12] bias[0] (mode 1) */
  int32_t mode;        /* [16] 0: acc starts at 0, 1: at bias[j], 2: at C(i, j) */
  int32_t sam4, sbn4;  /* [20], [24] A's row and B's column stride, bytes (A.B^T
                        * specialised: 3 columns) */
  int32_t scm4;        /* [28] C's row stride, bytes (its columns are adjacent) */
  int32_t a_strip;     /* [32] A from a strip to the next, bytes */
  int32_t runs;        /* [36] runs of k steps per block after the first */
  int32_t strips;      /* [40] strips (scratch: left) */
  int32_t w6, w4;      /* [44], [48] 4 x 6 and 4 x 4 blocks per strip */
  int32_t a_step;      /* [52] A's pointers' advance per step (A^T.B, G), bytes */
  int32_t trip;        /* [56] the specialised pointer's advance per trip, bytes */
  int32_t b_step;      /* [60] B's pointer's advance per step (B's rows), bytes */
  int32_t layout;      /* [64] the body (body_t) */
  width_plan_t w[2];   /* [68] 4 x 6 blocks, [100] 4 x 4 blocks */
  float *c_strip;      /* [132] scratch: C of the strip */
} plan_t;

_Static_assert(sizeof(void *) == 4 && sizeof(width_plan_t) == 32 && sizeof(plan_t) == 136,
               "the asm's offsets");

/* The bodies, by family: A.B^T (then specialised for sam = sbn = 32, 64, 128), A.B
 * (sbk = 32, ...), A^T.B (sak = 32, ..., then sak = sbk = 32, ...), A strided both
 * ways. The 4 x 4 blocks of A^T.B specialised for sak alone use the family's first. */
typedef enum {
  BODY_T, BODY_T32, BODY_T64, BODY_T128, BODY_N, BODY_N32, BODY_N64, BODY_N128,
  BODY_TN, BODY_TN32, BODY_TN64, BODY_TN128, BODY_TNB32, BODY_TNB64, BODY_TNB128, BODY_G
} body_t;

/* --- A step: 4 values of A, W of B, 4W multiply-adds ------------------------------- */

#define FMA4(r0, r1, r2, r3, fb)                                                       \
  "fmadd.s f" #r0 ", f24, " fb ", f" #r0 "\n\t fmadd.s f" #r1 ", f25, " fb ", f" #r1  \
  "\n\t fmadd.s f" #r2 ", f26, " fb ", f" #r2 "\n\t fmadd.s f" #r3 ", f27, " fb        \
  ", f" #r3 "\n\t"
/* The W columns of a step, A in f24..f27: LB(c, c's byte offset in B's row, register,
 * p) loads B(k, j + c) at position p (column 0 is already in f28) */
#define COLUMNS6(LB, p)                                                                \
  LB(1, "4", "f29", p) FMA4(0, 6, 12, 18, "f28") LB(2, "8", "f28", p)                  \
  FMA4(1, 7, 13, 19, "f29") LB(3, "12", "f29", p) FMA4(2, 8, 14, 20, "f28")            \
  LB(4, "16", "f28", p) FMA4(3, 9, 15, 21, "f29") LB(5, "20", "f29", p)                \
  FMA4(4, 10, 16, 22, "f28") FMA4(5, 11, 17, 23, "f29")
#define COLUMNS4(LB, p)                                                                \
  LB(1, "4", "f29", p) FMA4(0, 6, 12, 18, "f28") LB(2, "8", "f28", p)                  \
  FMA4(1, 7, 13, 19, "f29") LB(3, "12", "f29", p) FMA4(2, 8, 14, 20, "f28")            \
  FMA4(3, 9, 15, 21, "f29")
#define LOAD(reg, off, p) "flw " reg ", " off "(%[" p "])\n\t"
#define ADD(p, by) "add %[" p "], %[" p "], %[" by "]\n\t"
#define ADDI(p, by) "addi %[" p "], %[" p "], " by "\n\t"
#define ADDI_A(by) ADDI("pa0", by) ADDI("pa1", by) ADDI("pa2", by) ADDI("pa3", by)
#define LABEL(name) ".L" name "%=:\n\t"
#define POSITION(body, W, p) LABEL(body #W "p" #p)
/* ES: the specialised stride in bytes (an assembler symbol, set before each body); a
 * specialised pointer reads step p of a trip at (p - 4) ES */
#define SPEC(p) "ES%=*" p "-4*ES%="
#define SET_ES(S) ".set ES%=, 4*" #S "\n\t"

/* A.B^T: A's rows and B's columns along k, 4 + W pointers, step p at 4p */
#define LB_T(c, bytes, reg, p) LOAD(reg, "4*" p, "pb" #c)
#define STEP_T(W, p)                                                                   \
  LOAD("f28", "4*" p, "pb0") LOAD("f24", "4*" p, "pa0") LOAD("f25", "4*" p, "pa1")     \
  LOAD("f26", "4*" p, "pa2") LOAD("f27", "4*" p, "pa3") COLUMNS##W(LB_T, p)
#define ADDI_B6(by) ADDI("pb0", by) ADDI("pb1", by) ADDI("pb2", by) ADDI("pb3", by)     \
  ADDI("pb4", by) ADDI("pb5", by)
#define ADDI_B4(by) ADDI("pb0", by) ADDI("pb1", by) ADDI("pb2", by) ADDI("pb3", by)
/* sam = sbn = ES / 4: A's rows ES apart from pa0, B's columns 0..2 from pb0, 3..5 from
 * pb3 */
#define TS_P1 "pb0"
#define TS_P2 "pb0"
#define TS_P3 "pb3"
#define TS_P4 "pb3"
#define TS_P5 "pb3"
#define TS_M1 "1"
#define TS_M2 "2"
#define TS_M3 "0"
#define TS_M4 "1"
#define TS_M5 "2"
#define LB_TS(c, bytes, reg, p) LOAD(reg, "4*" p "+" TS_M##c "*ES%=", TS_P##c)
#define STEP_TS(W, p)                                                                  \
  LOAD("f28", "4*" p, "pb0") LOAD("f24", "4*" p, "pa0") LOAD("f25", "4*" p "+ES%=", "pa0") \
  LOAD("f26", "4*" p "+2*ES%=", "pa0") LOAD("f27", "4*" p "+3*ES%=", "pa0")             \
  COLUMNS##W(LB_TS, p)
/* B's row k at pb0 + off (its columns 4 bytes apart) */
#define LB_ROW(c, bytes, reg, off) LOAD(reg, off "+" bytes, "pb0")
#define ROW_B(W, off) LOAD("f28", off, "pb0") COLUMNS##W(LB_ROW, off)
/* A.B: A's rows along k, B's row at pb0 (+= b_step) or at SPEC(p) */
#define A_ROWS(p)                                                                      \
  LOAD("f24", "4*" p, "pa0") LOAD("f25", "4*" p, "pa1") LOAD("f26", "4*" p, "pa2")     \
  LOAD("f27", "4*" p, "pa3")
#define STEP_N(W, p) A_ROWS(p) ROW_B(W, "0") ADD("pb0", "rb")
#define STEP_NS(W, p) A_ROWS(p) ROW_B(W, SPEC(p))
/* A^T.B: A's column k at pa0 + off (its rows 4 bytes apart) */
#define A_COLUMN(off)                                                                  \
  LOAD("f24", off "+0", "pa0") LOAD("f25", off "+4", "pa0") LOAD("f26", off "+8", "pa0") \
  LOAD("f27", off "+12", "pa0")
#define STEP_TN(W, p) A_COLUMN("0") ROW_B(W, "0") ADD("pb0", "rb") ADD("pa0", "ra")
#define STEP_TNS(W, p) A_COLUMN(SPEC(p)) ROW_B(W, "0") ADD("pb0", "rb")
#define STEP_TNB(W, p) A_COLUMN(SPEC(p)) ROW_B(W, SPEC(p))
/* A strided both ways (a convolution's weights): 4 row pointers += a_step */
#define STEP_G(W, p)                                                                   \
  LOAD("f24", "0", "pa0") LOAD("f25", "0", "pa1") LOAD("f26", "0", "pa2")              \
  LOAD("f27", "0", "pa3") ROW_B(W, "0") ADD("pb0", "rb") ADD("pa0", "ra")              \
  ADD("pa1", "ra") ADD("pa2", "ra") ADD("pa3", "ra")

/* The bodies: positions p0, p1, ... of equal size, then the pointers' advance per trip;
 * back to the block's code at the end of the run */
#define TRIP_END(body, W)                                                              \
  "bne %[pa0], %[end], .L" body #W "p0%=\n\t j .Lrun_end" #W "%=\n\t"
#define BODY_8(body, W, STEP, trip)                                                    \
  POSITION(body, W, 0) STEP(W, "0") POSITION(body, W, 1) STEP(W, "1") STEP(W, "2")      \
  STEP(W, "3") STEP(W, "4") STEP(W, "5") STEP(W, "6") STEP(W, "7") trip                 \
  TRIP_END(body, W)
#define BODY_4(body, W, STEP)                                                          \
  POSITION(body, W, 0) STEP(W, "0") POSITION(body, W, 1) STEP(W, "1") STEP(W, "2")      \
  STEP(W, "3") TRIP_END(body, W)
#define BODY_T(W) BODY_8("t", W, STEP_T, ADDI_A("32") ADDI_B##W("32"))
#define BODY_TS(W, S)                                                                  \
  SET_ES(S) BODY_8("t" #S "_", W, STEP_TS, ADDI("pa0", "32") ADDI("pb0", "32")         \
                   ADDI("pb3", "32"))
#define BODY_N(W) BODY_8("n", W, STEP_N, ADDI_A("32"))
#define BODY_NS(W, S) SET_ES(S) BODY_8("n" #S "_", W, STEP_NS, ADDI_A("32") ADD("pb0", "rl"))
#define BODY_TN(W) BODY_4("tn", W, STEP_TN)
#define BODY_TNS(S) SET_ES(S) BODY_8("tn" #S "_", 6, STEP_TNS, ADD("pa0", "rl"))
#define BODY_TNB(W, S)                                                                 \
  SET_ES(S) BODY_8("tnb" #S "_", W, STEP_TNB, ADD("pa0", "rl") ADD("pb0", "rl"))
#define BODY_G(W) BODY_4("g", W, STEP_G)

/* --- A block's start and finish ------------------------------------------------------ */

#define BELOW6(OP) OP(6, 7, 8, 9, 10, 11) OP(12, 13, 14, 15, 16, 17) OP(18, 19, 20, 21, 22, 23)
#define BELOW4(OP) OP(6, 7, 8, 9) OP(12, 13, 14, 15) OP(18, 19, 20, 21)
#define ROWS6(OP) OP(0, 1, 2, 3, 4, 5) BELOW6(OP)
#define ROWS4(OP) OP(0, 1, 2, 3) BELOW4(OP)
/* C's rows at t, t += rs between them */
#define NEXT_ROW "add %[t], %[t], %[rs]\n\t"
#define C_ROWS6(OP)                                                                    \
  OP(0, 1, 2, 3, 4, 5) NEXT_ROW OP(6, 7, 8, 9, 10, 11) NEXT_ROW                        \
  OP(12, 13, 14, 15, 16, 17) NEXT_ROW OP(18, 19, 20, 21, 22, 23)
#define C_ROWS4(OP)                                                                    \
  OP(0, 1, 2, 3) NEXT_ROW OP(6, 7, 8, 9) NEXT_ROW OP(12, 13, 14, 15) NEXT_ROW          \
  OP(18, 19, 20, 21)
#define ZERO(r) "fmv.w.x f" #r ", zero\n\t"
#define ZERO6(a, b, c, d, e, f) ZERO(a) ZERO(b) ZERO(c) ZERO(d) ZERO(e) ZERO(f)
#define ZERO4(a, b, c, d) ZERO(a) ZERO(b) ZERO(c) ZERO(d)
/* row 0 of the accumulators into a row */
#define COPY(r, c) "fmv.s f" #r ", f" #c "\n\t"
#define COPY6(a, b, c, d, e, f) COPY(a, 0) COPY(b, 1) COPY(c, 2) COPY(d, 3) COPY(e, 4)  \
  COPY(f, 5)
#define COPY4(a, b, c, d) COPY(a, 0) COPY(b, 1) COPY(c, 2) COPY(d, 3)
/* a row of W accumulators from or into memory at t */
#define MEM(op, r, off) op " f" #r ", " off "(%[t])\n\t"
#define MEM6(op, a, b, c, d, e, f)                                                     \
  MEM(op, a, "0") MEM(op, b, "4") MEM(op, c, "8") MEM(op, d, "12") MEM(op, e, "16")   \
  MEM(op, f, "20")
#define MEM4(op, a, b, c, d) MEM(op, a, "0") MEM(op, b, "4") MEM(op, c, "8") MEM(op, d, "12")
#define STORE6(a, b, c, d, e, f) MEM6("fsw", a, b, c, d, e, f)
#define STORE4(a, b, c, d) MEM4("fsw", a, b, c, d)
#define LOAD6(a, b, c, d, e, f) MEM6("flw", a, b, c, d, e, f)
#define LOAD4(a, b, c, d) MEM4("flw", a, b, c, d)
#define BIAS4                                                                          \
  LOAD("f0", "0", "bj") LOAD("f1", "4", "bj") LOAD("f2", "8", "bj") LOAD("f3", "12", "bj")
#define BIAS6 BIAS4 LOAD("f4", "16", "bj") LOAD("f5", "20", "bj")
#define FIELD(reg, offset) "lw %[" reg "], " #offset "(%[plan])\n\t"
#define STORE_FIELD(reg, offset) "sw %[" reg "], " #offset "(%[plan])\n\t"

/* The accumulators' start by mode: bias[j] (row 0 loaded at bj, copied to the others),
 * 0, or C's block */
#define START(W)                                                                       \
  FIELD("t", 16) "addi %[t], %[t], -1\n\t bnez %[t], .Lnot_bias" #W "%=\n\t" BIAS##W \
  "addi %[bj], %[bj], 4*" #W "\n\t" BELOW##W(COPY##W) "j .Lstarted" #W "%=\n\t"      \
  LABEL("not_bias" #W) "bgtz %[t], .Lold" #W "%=\n\t" ROWS##W(ZERO##W)                \
  "j .Lstarted" #W "%=\n\t" LABEL("old" #W) "mv %[t], %[cblk]\n\t" C_ROWS##W(LOAD##W) \
  LABEL("started" #W)

/* A block of width W (its plan at R, in registers: entry, run, b_next): pointers from
 * the strip's A and the block's B column (POINTERS), the start, the runs (each enters
 * the body at the entry), the stores */
#define BLOCK(W, R, POINTERS, B_SKIP)                                                  \
  POINTERS(W) "add %[bcol], %[bcol], %[next]\n\t" START(W)                             \
  FIELD("runs", 36) LABEL("run" #W) "add %[end], %[pa0], %[run]\n\t jr %[entry]\n\t"    \
  LABEL("run_end" #W) "beqz %[runs], .Lfinish" #W "%=\n\t addi %[runs], %[runs], -1\n\t" \
  FIELD("t", R + 12) ADD("pa0", "t") ADD("pa1", "t") ADD("pa2", "t") ADD("pa3", "t")   \
  FIELD("t", R + 16) B_SKIP "j .Lrun" #W "%=\n\t" LABEL("finish" #W)                   \
  "mv %[t], %[cblk]\n\t" C_ROWS##W(STORE##W) "addi %[cblk], %[cblk], 4*" #W "\n\t"

/* A width's registers from its plan at R */
#define WIDTH_FIELDS(R) FIELD("entry", R + 4) FIELD("run", R + 8) FIELD("next", R + 28)

/* The strips: their blocks of 6 columns, then of 4; A's pointer on, B's back */
#define STRIPS(BLOCK6, BLOCK4, FIELDS6, FIELDS4)                                                         \
  FIELD("astrip", 0) FIELD("bcol", 4) FIELD("cblk", 8) STORE_FIELD("cblk", 132)        \
  FIELD("bj", 12) FIELD("sa", 20) FIELD("rs", 28)                                      \
  LABEL("strip") FIELD("blocks", 44) "beqz %[blocks], .Lnarrow%=\n\t"                \
  WIDTH_FIELDS(68) FIELDS6 LABEL("wide") BLOCK6                                                \
  "addi %[blocks], %[blocks], -1\n\t bnez %[blocks], .Lwide%=\n\t"                     \
  LABEL("narrow") FIELD("blocks", 48) "beqz %[blocks], .Lstrip_end%=\n\t"              \
  WIDTH_FIELDS(100) FIELDS4 LABEL("narrow_block") BLOCK4                                       \
  "addi %[blocks], %[blocks], -1\n\t bnez %[blocks], .Lnarrow_block%=\n\t"             \
  LABEL("strip_end") FIELD("t", 40) "addi %[t], %[t], -1\n\t beqz %[t], .Ldone%=\n\t" \
  STORE_FIELD("t", 40) FIELD("t", 32) "add %[astrip], %[astrip], %[t]\n\t"           \
  FIELD("bcol", 4) FIELD("t", 132) "slli %[u], %[rs], 2\n\t"                           \
  "add %[cblk], %[t], %[u]\n\t" STORE_FIELD("cblk", 132) FIELD("bj", 12)               \
  "j .Lstrip%=\n\t"

/* The entry of a body into the width plan at R: p0 + e (p1 - p0) */
#define ENTRY(body, W, R)                                                              \
  "la %[t], .L" body #W "p0%=\n\t la %[u], .L" body #W "p1%=\n\t"                      \
  "sub %[u], %[u], %[t]\n\t" FIELD("end", R) "mul %[u], %[u], %[end]\n\t"              \
  "add %[t], %[t], %[u]\n\t" STORE_FIELD("t", R + 4)
#define ENTRIES(body6, body4) ENTRY(body6, 6, 68) ENTRY(body4, 4, 100) "j .Lentered%=\n\t"
/* the layout's entries: `first` the first body of the asm's families */
#define CASE(body) "addi %[t], %[t], -1\n\t beqz %[t], .Lbody_" body "%=\n\t"

#define BODIES_BEGIN ".option push\n\t .option norvc\n\t"
#define BODIES_END ".option pop\n\t" LABEL("done")

#define CLOBBERS                                                                       \
  "memory", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11",  \
      "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "f20", "f21", "f22",     \
      "f23", "f24", "f25", "f26", "f27", "f28", "f29"

/* A.B^T: A's rows and B's W columns from the strip's and the block's pointers; the
 * specialised bodies read from pa0, pb0 and pb3 (sb: 3 columns) */
#define A_ROWS_FROM(p) "mv %[pa0], %[" p "]\n\t"
#define A_ROWS_NEXT                                                                    \
  "add %[pa1], %[pa0], %[sa]\n\t add %[pa2], %[pa1], %[sa]\n\t add %[pa3], %[pa2], %[sa]\n\t"
#define B_COLUMNS4                                                                     \
  "mv %[pb0], %[bcol]\n\t add %[pb1], %[pb0], %[sb]\n\t add %[pb2], %[pb1], %[sb]\n\t"  \
  "add %[pb3], %[pb2], %[sb]\n\t"
#define B_COLUMNS6 B_COLUMNS4 "add %[pb4], %[pb3], %[sb]\n\t add %[pb5], %[pb4], %[sb]\n\t"
#define T_POINTERS(W)                                                                  \
  FIELD("t", 64) "beqz %[t], .Lgeneric" #W "%=\n\t" A_ROWS_FROM("astrip")              \
  "mv %[pb0], %[bcol]\n\t add %[pb3], %[bcol], %[sb]\n\t j .Lpointed" #W "%=\n\t"    \
  LABEL("generic" #W) A_ROWS_FROM("astrip") A_ROWS_NEXT B_COLUMNS##W LABEL("pointed" #W)
#define B_SKIP4 ADD("pb0", "t") ADD("pb1", "t") ADD("pb2", "t") ADD("pb3", "t")
#define B_SKIP6 B_SKIP4 ADD("pb4", "t") ADD("pb5", "t")

__attribute__((noinline)) static void asm_strips_t(plan_t *plan) {
  const float *pa0, *pa1, *pa2, *pa3, *pb0, *pb1, *pb2, *pb3, *pb4, *pb5, *astrip, *bcol;
  const float *end, *bj;
  const void *entry;
  float *cblk;
  int32_t blocks, runs, t, u, sa, sb, rs, run, next;
  __asm__ volatile(
      FIELD("sb", 24) FIELD("t", 64) CASE("t32") CASE("t64") CASE("t128")
      ENTRIES("t", "t") LABEL("body_t32") ENTRIES("t32_", "t32_")
      LABEL("body_t64") ENTRIES("t64_", "t64_") LABEL("body_t128") ENTRIES("t128_", "t128_")
      LABEL("entered")
      STRIPS(BLOCK(6, 68, T_POINTERS, B_SKIP6), BLOCK(4, 100, T_POINTERS, B_SKIP4), , )
      BODIES_BEGIN BODY_T(6) BODY_T(4) BODY_TS(6, 32) BODY_TS(4, 32) BODY_TS(6, 64)
      BODY_TS(4, 64) BODY_TS(6, 128) BODY_TS(4, 128) BODIES_END
      : [pa0] "=&r"(pa0), [pa1] "=&r"(pa1), [pa2] "=&r"(pa2), [pa3] "=&r"(pa3),
        [pb0] "=&r"(pb0), [pb1] "=&r"(pb1), [pb2] "=&r"(pb2), [pb3] "=&r"(pb3),
        [pb4] "=&r"(pb4), [pb5] "=&r"(pb5), [astrip] "=&r"(astrip), [bcol] "=&r"(bcol),
        [cblk] "=&r"(cblk), [blocks] "=&r"(blocks), [runs] "=&r"(runs), [t] "=&r"(t),
        [u] "=&r"(u), [sa] "=&r"(sa), [sb] "=&r"(sb), [end] "=&r"(end),
        [entry] "=&r"(entry), [rs] "=&r"(rs), [run] "=&r"(run), [next] "=&r"(next),
        [bj] "=&r"(bj)
      : [plan] "r"(plan)
      : CLOBBERS);
}

/* B's rows unit-stride: one pointer; A's first pointer adjusted per width */
#define ROWS_POINTERS(W)                                                               \
  "add %[pa0], %[astrip], %[aadj]\n\t" A_ROWS_NEXT "add %[pb0], %[bcol], %[badj]\n\t"
#define B_SKIP_ROW ADD("pb0", "t")
#define ROWS_WIDTH_FIELDS(R) FIELD("aadj", R + 20) FIELD("badj", R + 24)

__attribute__((noinline)) static void asm_strips_rows(plan_t *plan) {
  const float *pa0, *pa1, *pa2, *pa3, *pb0, *astrip, *bcol, *end, *bj;
  const void *entry;
  float *cblk;
  int32_t blocks, runs, t, u, sa, ra, rl, rb, rs, run, next, aadj, badj;
  __asm__ volatile(
      FIELD("ra", 52) FIELD("rl", 56) FIELD("rb", 60) FIELD("t", 64)
      "addi %[t], %[t], -4\n\t beqz %[t], .Lbody_n%=\n\t" CASE("n32") CASE("n64")
      CASE("n128") CASE("tn") CASE("tn32") CASE("tn64") CASE("tn128")
      CASE("tnb32") CASE("tnb64") CASE("tnb128")
      ENTRIES("g", "g") LABEL("body_n") ENTRIES("n", "n")
      LABEL("body_n32") ENTRIES("n32_", "n32_") LABEL("body_n64") ENTRIES("n64_", "n64_")
      LABEL("body_n128") ENTRIES("n128_", "n128_") LABEL("body_tn") ENTRIES("tn", "tn")
      LABEL("body_tn32") ENTRIES("tn32_", "tn") LABEL("body_tn64") ENTRIES("tn64_", "tn")
      LABEL("body_tn128") ENTRIES("tn128_", "tn") LABEL("body_tnb32")
      ENTRIES("tnb32_", "tnb32_") LABEL("body_tnb64") ENTRIES("tnb64_", "tnb64_")
      LABEL("body_tnb128") ENTRIES("tnb128_", "tnb128_") LABEL("entered")
      STRIPS(BLOCK(6, 68, ROWS_POINTERS, B_SKIP_ROW), BLOCK(4, 100, ROWS_POINTERS, B_SKIP_ROW),
             ROWS_WIDTH_FIELDS(68), ROWS_WIDTH_FIELDS(100))
      BODIES_BEGIN BODY_N(6) BODY_N(4) BODY_NS(6, 32) BODY_NS(4, 32) BODY_NS(6, 64)
      BODY_NS(4, 64) BODY_NS(6, 128) BODY_NS(4, 128) BODY_TN(6) BODY_TN(4) BODY_TNS(32)
      BODY_TNS(64) BODY_TNS(128) BODY_TNB(6, 32) BODY_TNB(4, 32) BODY_TNB(6, 64)
      BODY_TNB(4, 64) BODY_TNB(6, 128) BODY_TNB(4, 128) BODY_G(6) BODY_G(4) BODIES_END
      : [pa0] "=&r"(pa0), [pa1] "=&r"(pa1), [pa2] "=&r"(pa2), [pa3] "=&r"(pa3),
        [pb0] "=&r"(pb0), [astrip] "=&r"(astrip), [bcol] "=&r"(bcol),
        [cblk] "=&r"(cblk), [blocks] "=&r"(blocks), [runs] "=&r"(runs), [t] "=&r"(t),
        [u] "=&r"(u), [sa] "=&r"(sa), [ra] "=&r"(ra), [rl] "=&r"(rl), [rb] "=&r"(rb),
        [end] "=&r"(end), [entry] "=&r"(entry), [rs] "=&r"(rs), [run] "=&r"(run),
        [next] "=&r"(next), [aadj] "=&r"(aadj), [badj] "=&r"(badj), [bj] "=&r"(bj)
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
#undef SPEC
#undef SET_ES
#undef LB_T
#undef STEP_T
#undef ADDI_B6
#undef ADDI_B4
#undef TS_P1
#undef TS_P2
#undef TS_P3
#undef TS_P4
#undef TS_P5
#undef TS_M1
#undef TS_M2
#undef TS_M3
#undef TS_M4
#undef TS_M5
#undef LB_TS
#undef STEP_TS
#undef LB_ROW
#undef ROW_B
#undef A_ROWS
#undef STEP_N
#undef STEP_NS
#undef A_COLUMN
#undef STEP_TN
#undef STEP_TNS
#undef STEP_TNB
#undef STEP_G
#undef TRIP_END
#undef BODY_8
#undef BODY_4
#undef BODY_T
#undef BODY_TS
#undef BODY_N
#undef BODY_NS
#undef BODY_TN
#undef BODY_TNS
#undef BODY_TNB
#undef BODY_G
#undef BELOW6
#undef BELOW4
#undef ROWS6
#undef ROWS4
#undef NEXT_ROW
#undef C_ROWS6
#undef C_ROWS4
#undef ZERO
#undef ZERO6
#undef ZERO4
#undef COPY
#undef COPY6
#undef COPY4
#undef MEM
#undef MEM6
#undef MEM4
#undef STORE6
#undef STORE4
#undef LOAD6
#undef LOAD4
#undef BIAS6
#undef BIAS4
#undef FIELD
#undef STORE_FIELD
#undef START
#undef BLOCK
#undef WIDTH_FIELDS
#undef STRIPS
#undef ENTRY
#undef ENTRIES
#undef CASE
#undef BODIES_BEGIN
#undef BODIES_END
#undef CLOBBERS
#undef A_ROWS_FROM
#undef A_ROWS_NEXT
#undef T_POINTERS
#undef B_COLUMNS4
#undef B_COLUMNS6
#undef B_SKIP4
#undef B_SKIP6
#undef ROWS_POINTERS
#undef B_SKIP_ROW
#undef ROWS_WIDTH_FIELDS
