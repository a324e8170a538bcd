// Every kind of kernel-dialect op prints in its custom form and parses back; the generic
// form round-trips too. Buffers name their memory level (L1, L2, L3) in the memref type.
// RUN: edge-opt %s | filecheck %s
// RUN: edge-opt %s | edge-opt | filecheck %s
// RUN: edge-opt %s --print-op-generic | edge-opt | filecheck %s
// RUN: edge-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// CHECK:      nn.param trainable @w : tensor<4x8xf32>
nn.param trainable @w : tensor<4x8xf32>
// CHECK-NEXT: nn.param @w_momentum : tensor<4x8xf32>
nn.param @w_momentum : tensor<4x8xf32>

// CHECK-LABEL: func.func @storage
func.func @storage(%x: memref<2x8xf32, "L2">) -> memref<8xf32, "L1"> {
  // CHECK-NEXT: %w = kernel.get_param @w : memref<4x8xf32, "L3">
  %w = kernel.get_param @w : memref<4x8xf32, "L3">
  // CHECK-NEXT: %c = kernel.constant dense<2.000000e+00> : tensor<f32> -> memref<f32, "L2">
  %c = kernel.constant dense<2.0> : tensor<f32> -> memref<f32, "L2">
  // CHECK-NEXT: %a = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">
  %a = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">
  // CHECK-NEXT: kernel.linear ins(%x, %w : memref<2x8xf32, "L2">, memref<4x8xf32, "L3">) outs(%a : memref<2x4xf32, "L2">)
  kernel.linear ins(%x, %w : memref<2x8xf32, "L2">, memref<4x8xf32, "L3">) outs(%a : memref<2x4xf32, "L2">)
  // CHECK-NEXT: kernel.mul ins(%a, %c : memref<2x4xf32, "L2">, memref<f32, "L2">) outs(%a : memref<2x4xf32, "L2">)
  kernel.mul ins(%a, %c : memref<2x4xf32, "L2">, memref<f32, "L2">) outs(%a : memref<2x4xf32, "L2">)
  // CHECK-NEXT: %v = kernel.view %a : memref<2x4xf32, "L2"> -> memref<8xf32, "L2">
  %v = kernel.view %a : memref<2x4xf32, "L2"> -> memref<8xf32, "L2">
  // CHECK-NEXT: %b = kernel.alloc : memref<8xf32, "L1">
  %b = kernel.alloc : memref<8xf32, "L1">
  // CHECK-NEXT: kernel.copy %v, %b : memref<8xf32, "L2">, memref<8xf32, "L1">
  kernel.copy %v, %b : memref<8xf32, "L2">, memref<8xf32, "L1">
  // CHECK-NEXT: func.return %b : memref<8xf32, "L1">
  func.return %b : memref<8xf32, "L1">
}

// Kernels with properties, several outputs, integer buffers; in-place element-wise.
// CHECK-LABEL: func.func @kernels
func.func @kernels(%img: memref<1x2x4x4xf32, "L1">, %k: memref<3x2x3x3xf32, "L1">, %logits: memref<2x4xf32, "L2">, %labels: memref<2xi32, "L2">) -> memref<f32, "L2"> {
  // CHECK-NEXT: %conv = kernel.alloc : memref<1x3x4x4xf32, "L1">
  %conv = kernel.alloc : memref<1x3x4x4xf32, "L1">
  // CHECK-NEXT: kernel.conv2d ins(%img, %k : memref<1x2x4x4xf32, "L1">, memref<3x2x3x3xf32, "L1">) outs(%conv : memref<1x3x4x4xf32, "L1">) {padding = array<i64: 1, 1, 1, 1>}
  kernel.conv2d ins(%img, %k : memref<1x2x4x4xf32, "L1">, memref<3x2x3x3xf32, "L1">) outs(%conv : memref<1x3x4x4xf32, "L1">) {padding = array<i64: 1, 1, 1, 1>}
  // CHECK-NEXT: kernel.relu ins(%conv : memref<1x3x4x4xf32, "L1">) outs(%conv : memref<1x3x4x4xf32, "L1">)
  kernel.relu ins(%conv : memref<1x3x4x4xf32, "L1">) outs(%conv : memref<1x3x4x4xf32, "L1">)
  %p = kernel.alloc : memref<1x3x2x2xf32, "L1">
  %i = kernel.alloc : memref<1x3x2x2xui8, "L1">
  // CHECK:      kernel.max_pool2d_with_indices ins(%conv : memref<1x3x4x4xf32, "L1">) outs(%p, %i : memref<1x3x2x2xf32, "L1">, memref<1x3x2x2xui8, "L1">) {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>}
  kernel.max_pool2d_with_indices ins(%conv : memref<1x3x4x4xf32, "L1">) outs(%p, %i : memref<1x3x2x2xf32, "L1">, memref<1x3x2x2xui8, "L1">) {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>}
  %loss = kernel.alloc {offset = 64 : i64} : memref<f32, "L2">
  // CHECK:      kernel.cross_entropy ins(%logits, %labels : memref<2x4xf32, "L2">, memref<2xi32, "L2">) outs(%loss : memref<f32, "L2">)
  kernel.cross_entropy ins(%logits, %labels : memref<2x4xf32, "L2">, memref<2xi32, "L2">) outs(%loss : memref<f32, "L2">)
  func.return %loss : memref<f32, "L2">
}

// An optimizer update writes the parameter and its state in place.
// CHECK-LABEL: func.func @update
func.func @update(%g: memref<4x8xf32, "L2">) {
  %w = kernel.get_param @w : memref<4x8xf32, "L2">
  %m = kernel.get_param @w_momentum : memref<4x8xf32, "L2">
  // CHECK:      kernel.sgd_momentum ins(%w, %g, %m : memref<4x8xf32, "L2">, memref<4x8xf32, "L2">, memref<4x8xf32, "L2">) outs(%w, %m : memref<4x8xf32, "L2">, memref<4x8xf32, "L2">) {lr = 1.000000e-02 : f32, momentum = 9.000000e-01 : f32}
  kernel.sgd_momentum ins(%w, %g, %m : memref<4x8xf32, "L2">, memref<4x8xf32, "L2">, memref<4x8xf32, "L2">) outs(%w, %m : memref<4x8xf32, "L2">, memref<4x8xf32, "L2">) {lr = 1.0e-2 : f32, momentum = 9.0e-1 : f32}
  func.return
}

// GENERIC: "kernel.get_param"() <{param = @w}> : () -> memref<4x8xf32, "L3">
// GENERIC: "kernel.constant"() <{value = dense<2.000000e+00> : tensor<f32>}> : () -> memref<f32, "L2">
// GENERIC: "kernel.alloc"() <{offset = 0 : i64}> : () -> memref<2x4xf32, "L2">
// GENERIC: "kernel.linear"(%x, %w, %a) <{operandSegmentSizes = array<i32: 2, 1>}> : (memref<2x8xf32, "L2">, memref<4x8xf32, "L3">, memref<2x4xf32, "L2">) -> ()
// GENERIC: "kernel.view"(%a) : (memref<2x4xf32, "L2">) -> memref<8xf32, "L2">
// GENERIC: "kernel.copy"(%v, %b) : (memref<8xf32, "L2">, memref<8xf32, "L1">) -> ()

// The kernels of the parametrised activations and of nn.pad carry the tensor op's
// properties.
// CHECK-LABEL: func.func @scalar_params
func.func @scalar_params(%x: memref<1x2x3x3xf32, "L2">, %p: memref<1x2x5x4xf32, "L2">) {
  // CHECK-NEXT: kernel.clip ins(%x : memref<1x2x3x3xf32, "L2">) outs(%x : memref<1x2x3x3xf32, "L2">) {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32}
  kernel.clip ins(%x : memref<1x2x3x3xf32, "L2">) outs(%x : memref<1x2x3x3xf32, "L2">) {min = 0.0 : f32, max = 6.0 : f32}
  // CHECK-NEXT: kernel.hardsigmoid ins(%x : memref<1x2x3x3xf32, "L2">) outs(%x : memref<1x2x3x3xf32, "L2">) {alpha = 2.000000e-01 : f32}
  kernel.hardsigmoid ins(%x : memref<1x2x3x3xf32, "L2">) outs(%x : memref<1x2x3x3xf32, "L2">) {alpha = 0.2 : f32}
  // CHECK-NEXT: kernel.pad ins(%x : memref<1x2x3x3xf32, "L2">) outs(%p : memref<1x2x5x4xf32, "L2">) {pads = array<i64: 0, 0, 1, 0, 0, 0, 1, 1>, value = 5.000000e-01 : f32}
  kernel.pad ins(%x : memref<1x2x3x3xf32, "L2">) outs(%p : memref<1x2x5x4xf32, "L2">) {pads = array<i64: 0, 0, 1, 0, 0, 0, 1, 1>, value = 0.5 : f32}
  func.return
}
