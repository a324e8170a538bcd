// Every verifier rule of the kernel dialect names the op and the rule broken. Kernel ops
// are checked by their tensor-level twin (its rules, reported under the kernel's name),
// plus the buffer rules: memory levels, and in place only where the kernel allows it.
// RUN: edge-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @not_in_place(%x: memref<2x8xf32, "L2">, %w: memref<8x8xf32, "L2">) {
  // CHECK: kernel.linear: output 0 is input 0's buffer, but this kernel cannot run in place
  kernel.linear ins(%x, %w : memref<2x8xf32, "L2">, memref<8x8xf32, "L2">) outs(%x : memref<2x8xf32, "L2">)
  func.return
}

// -----

func.func @softmax_not_in_place(%x: memref<2x8xf32, "L2">) {
  // CHECK: kernel.softmax: output 0 is input 0's buffer, but this kernel cannot run in place
  kernel.softmax ins(%x : memref<2x8xf32, "L2">) outs(%x : memref<2x8xf32, "L2">) {axis = 1 : i64}
  func.return
}

// -----

func.func @pad_not_in_place(%x: memref<2x8xf32, "L2">) {
  // CHECK: kernel.pad: output 0 is input 0's buffer, but this kernel cannot run in place
  kernel.pad ins(%x : memref<2x8xf32, "L2">) outs(%x : memref<2x8xf32, "L2">) {pads = array<i64: 0, 0, 0, 0>}
  func.return
}

// -----

func.func @momentum_over_the_gradient(%w: memref<4xf32, "L2">, %g: memref<4xf32, "L2">, %m: memref<4xf32, "L2">) {
  // CHECK: kernel.sgd_momentum: output 1 is input 1's buffer, but this kernel cannot run in place
  kernel.sgd_momentum ins(%w, %g, %m : memref<4xf32, "L2">, memref<4xf32, "L2">, memref<4xf32, "L2">) outs(%w, %g : memref<4xf32, "L2">, memref<4xf32, "L2">) {lr = 1.0e-2 : f32, momentum = 9.0e-1 : f32}
  func.return
}

// -----

func.func @shape(%x: memref<2x8xf32, "L2">, %w: memref<4x7xf32, "L2">, %y: memref<2x4xf32, "L2">) {
  // CHECK: kernel.linear: input features (8) must equal weight in-features (7)
  kernel.linear ins(%x, %w : memref<2x8xf32, "L2">, memref<4x7xf32, "L2">) outs(%y : memref<2x4xf32, "L2">)
  func.return
}

// -----

func.func @elementwise_shape(%x: memref<4xf32, "L2">, %y: memref<5xf32, "L2">) {
  // CHECK: kernel.relu: result 'result' at position 0 does not verify
  kernel.relu ins(%x : memref<4xf32, "L2">) outs(%y : memref<5xf32, "L2">)
  func.return
}

// -----

func.func @conv_result(%x: memref<1x3x8x8xf32, "L2">, %w: memref<4x3x3x3xf32, "L2">, %y: memref<1x4x8x8xf32, "L2">) {
  // CHECK: kernel.conv2d: result shape [1, 4, 8, 8] does not match the shape [1, 4, 6, 6] computed from the operands and attributes
  kernel.conv2d ins(%x, %w : memref<1x3x8x8xf32, "L2">, memref<4x3x3x3xf32, "L2">) outs(%y : memref<1x4x8x8xf32, "L2">)
  func.return
}

// -----

func.func @no_level(%x: memref<4xf32>, %y: memref<4xf32, "L2">) {
  // CHECK: kernel.relu: expected a memref with a memory level, got memref<4xf32>
  kernel.relu ins(%x : memref<4xf32>) outs(%y : memref<4xf32, "L2">)
  func.return
}

// -----

func.func @unknown_level(%x: memref<4xf32, "L2">, %y: memref<4xf32, "L4">) {
  // CHECK: kernel.relu: unknown memory level "L4" (expected one of L1, L2, L3)
  kernel.relu ins(%x : memref<4xf32, "L2">) outs(%y : memref<4xf32, "L4">)
  func.return
}

// -----

func.func @alloc_offset() {
  // CHECK: kernel.alloc: offset -16 < 0
  %a = kernel.alloc {offset = -16 : i64} : memref<4xf32, "L2">
  func.return
}

// -----

func.func @alloc_level() {
  // CHECK: kernel.alloc: unknown memory level "DRAM" (expected one of L1, L2, L3)
  %a = kernel.alloc : memref<4xf32, "DRAM">
  func.return
}

// -----

func.func @view_count(%a: memref<2x4xf32, "L2">) {
  // CHECK: kernel.view: memref<2x4xf32, "L2"> and memref<3x3xf32, "L2"> differ in element type, count or memory level
  %v = kernel.view %a : memref<2x4xf32, "L2"> -> memref<3x3xf32, "L2">
  func.return
}

// -----

func.func @view_level(%a: memref<2x4xf32, "L2">) {
  // CHECK: kernel.view: memref<2x4xf32, "L2"> and memref<8xf32, "L1"> differ in element type, count or memory level
  %v = kernel.view %a : memref<2x4xf32, "L2"> -> memref<8xf32, "L1">
  func.return
}

// -----

func.func @copy_shape(%a: memref<8xf32, "L2">, %b: memref<2x4xf32, "L1">) {
  // CHECK: kernel.copy: memref<8xf32, "L2"> and memref<2x4xf32, "L1"> differ in shape or element type
  kernel.copy %a, %b : memref<8xf32, "L2">, memref<2x4xf32, "L1">
  func.return
}

// -----

func.func @constant_type() {
  // CHECK: kernel.constant: value type tensor<2xf32> does not match the result memref<3xf32, "L2">
  %c = "kernel.constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> memref<3xf32, "L2">
  func.return
}

// -----

nn.param @w : tensor<4x8xf32>

func.func @param_type() {
  // CHECK: kernel.get_param: result type tensor<8x4xf32> does not match the type tensor<4x8xf32> of @w
  %w = kernel.get_param @w : memref<8x4xf32, "L2">
  func.return
}

// -----

func.func @workspace_shape(%dy: memref<2x4xf32, "L2">, %x: memref<2x3xf32, "L2">, %w: memref<4x3xf32, "L2">, %ws: memref<2x4xf32, "L2">) {
  // CHECK: {{^ *}}kernel.linear_grad_weight_sgd: the workspace is memref<2x4xf32, "L2">, expected [2, 3] of the result's element type (chunk_rows rows of the weight)
  kernel.linear_grad_weight_sgd ins(%dy, %x, %w : memref<2x4xf32, "L2">, memref<2x3xf32, "L2">, memref<4x3xf32, "L2">) outs(%w, %ws : memref<4x3xf32, "L2">, memref<2x4xf32, "L2">) {lr = 0.1 : f32, chunk_rows = 2 : i64}
  func.return
}
