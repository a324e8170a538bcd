// The preconditions of plan-memory and the SoC's capacity: each broken one is one
// `edge-opt: error: pass failed: ...` line, exit status 1, no traceback. A plan that does
// not fit says by how much and what dominates, and what to do about it.

// RUN: not edge-opt %s -p "plan-memory{soc=gap9}" 2>&1 | filecheck %s --check-prefix=PARAMS
// PARAMS: edge-opt: error: pass failed: plan-memory: L2 needs 2,400,032 B but gap9 has 1,572,864 B (over by 827,168 B); largest: parameters and optimizer state 2,400,000 B, the arena (activations and gradients) 32 B; move parameters to L3 (bufferize{weights=L3})
// PARAMS-NOT: Traceback

// RUN: not edge-opt %S/plan-memory.mlir -p "plan-memory{soc=siracusa}" 2>&1 | filecheck %s --check-prefix=LEVEL
// LEVEL: edge-opt: error: pass failed: plan-memory: SoC siracusa has no L3 memory (it has L1, L2); choose other levels in bufferize

// RUN: not edge-opt %s -p "plan-memory{soc=gap8}" 2>&1 | filecheck %s --check-prefix=TARGET
// TARGET: edge-opt: error: pass failed: plan-memory: unknown SoC 'gap8' (known: gap9, host, siracusa, or the path of a .toml file)

// Without the check (reports use it), the plan is made and recorded anyway.
// RUN: edge-opt %s -p "plan-memory{soc=gap9 check=false}" | filecheck %s --check-prefix=NOCHECK
// NOCHECK: L2 = {arena = 32 : i64, constants = 0 : i64, lower_bound = 32 : i64, naive = 32 : i64, persistent = 2400000 : i64}

nn.param trainable @big : tensor<600000xf32> {kernel.level = "L2"}
nn.param @small : tensor<4xf32> {kernel.level = "L3"}

func.func @forward(%x: memref<4xf32, "L2">) -> memref<4xf32, "L2"> {
  %w = kernel.get_param @big : memref<600000xf32, "L2">
  %a = kernel.alloc : memref<4xf32, "L2">
  kernel.relu ins(%x : memref<4xf32, "L2">) outs(%a : memref<4xf32, "L2">)
  %b = kernel.alloc : memref<4xf32, "L2">
  kernel.add ins(%a, %x : memref<4xf32, "L2">, memref<4xf32, "L2">) outs(%b : memref<4xf32, "L2">)
  func.return %b : memref<4xf32, "L2">
}

// An activation arena too large for GAP9's L1 (its parameters elsewhere): the hint is
// about training less, not about parameters.
// RUN: not edge-opt %inputs/plan_memory_l1.mlir -p "plan-memory{soc=gap9}" 2>&1 | filecheck %s --check-prefix=ARENA
// ARENA: edge-opt: error: pass failed: plan-memory: L1 needs 160,000 B but gap9 has 120,000 B (over by 40,000 B); largest: the arena (activations and gradients) 160,000 B; train fewer layers (train-last, train-sparse) or use a SoC with more memory

// A function still at the tensor level.
// RUN: not edge-opt %examples/tiny_cnn.mlir -p plan-memory 2>&1 | filecheck %s --check-prefix=TENSORS
// TENSORS: edge-opt: error: pass failed: plan-memory: @forward is not at the buffer level; run bufferize first
