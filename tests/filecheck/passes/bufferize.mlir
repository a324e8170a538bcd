// bufferize lowers tensor-level functions to kernel calls on memrefs (destination-passing
// style): an element-wise kernel writes over an input buffer that dies there, an optimizer
// update writes the parameter's buffer in place, a reshape is a view (no copy), and a
// store whose old parameter value is still read later copies the old value out first.

// RUN: edge-opt %s -p bufferize | filecheck %s
// RUN: edge-opt %s -p "bufferize{weights=L3}" | filecheck %s --check-prefix=L3
// RUN: edge-opt %s -p "bufferize{level=L1}" | filecheck %s --check-prefix=L1
// RUN: not edge-opt %s -p bufferize,bufferize 2>&1 | filecheck %s --check-prefix=TWICE

nn.param trainable @w : tensor<4x8xf32>
nn.param trainable @b : tensor<4xf32>
nn.param trainable @v : tensor<4xf32>

// CHECK:      nn.param trainable @w : tensor<4x8xf32> {kernel.level = "L2"}
// L3:         nn.param trainable @w : tensor<4x8xf32> {kernel.level = "L3"}

func.func @step(%x: tensor<2x8xf32>, %t: tensor<2x4xf32>) -> tensor<f32> {
  %w = nn.load @w : tensor<4x8xf32>
  %b = nn.load @b : tensor<4xf32>
  %y = nn.linear %x, %w, %b : (tensor<2x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %r = nn.relu %y : tensor<2x4xf32>
  %flat = nn.reshape %r : tensor<2x4xf32> -> tensor<8xf32>
  %back = nn.reshape %flat : tensor<8xf32> -> tensor<2x4xf32>
  %loss = train.mse %back, %t : tensor<2x4xf32> -> tensor<f32>
  %d = train.mse_grad %back, %t : tensor<2x4xf32>
  %dr = train.relu_grad %d, %r : tensor<2x4xf32>
  %dw = train.linear_grad_weight %dr, %x : (tensor<2x4xf32>, tensor<2x8xf32>) -> tensor<4x8xf32>
  %db = nn.reduce_sum %dr {axes = array<i64: 0>} : tensor<2x4xf32> -> tensor<4xf32>
  %w_new = train.sgd %w, %dw {lr = 1.0e-2 : f32} : tensor<4x8xf32>
  train.store %w_new, @w : tensor<4x8xf32>
  %b_new = train.sgd %b, %db {lr = 1.0e-2 : f32} : tensor<4xf32>
  train.store %b_new, @b : tensor<4xf32>
  func.return %loss : tensor<f32>
}

// CHECK-LABEL: func.func @step(%x: memref<2x8xf32, "L2">, %t: memref<2x4xf32, "L2">) -> memref<f32, "L2"> {
// CHECK-NEXT:    %w = kernel.get_param @w : memref<4x8xf32, "L2">
// CHECK-NEXT:    %b = kernel.get_param @b : memref<4xf32, "L2">
// CHECK-NEXT:    %y = kernel.alloc : memref<2x4xf32, "L2">
// CHECK-NEXT:    kernel.linear ins(%x, %w, %b : memref<2x8xf32, "L2">, memref<4x8xf32, "L2">, memref<4xf32, "L2">) outs(%y : memref<2x4xf32, "L2">)
// The relu writes over %y, which dies there.
// CHECK-NEXT:    kernel.relu ins(%y : memref<2x4xf32, "L2">) outs(%y : memref<2x4xf32, "L2">)
// Reshapes are views of the same storage, also of a view.
// CHECK-NEXT:    %flat = kernel.view %y : memref<2x4xf32, "L2"> -> memref<8xf32, "L2">
// CHECK-NEXT:    %back = kernel.view %flat : memref<8xf32, "L2"> -> memref<2x4xf32, "L2">
// CHECK-NEXT:    %loss = kernel.alloc : memref<f32, "L2">
// CHECK-NEXT:    kernel.mse ins(%back, %t : memref<2x4xf32, "L2">, memref<2x4xf32, "L2">) outs(%loss : memref<f32, "L2">)
// CHECK-NEXT:    %d = kernel.alloc : memref<2x4xf32, "L2">
// CHECK-NEXT:    kernel.mse_grad ins(%back, %t : memref<2x4xf32, "L2">, memref<2x4xf32, "L2">) outs(%d : memref<2x4xf32, "L2">)
// relu_grad may write over its gradient operand only (%d), not over the relu's output.
// CHECK-NEXT:    kernel.relu_grad ins(%d, %y : memref<2x4xf32, "L2">, memref<2x4xf32, "L2">) outs(%d : memref<2x4xf32, "L2">)
// CHECK-NEXT:    %dw = kernel.alloc : memref<4x8xf32, "L2">
// CHECK-NEXT:    kernel.linear_grad_weight ins(%d, %x : memref<2x4xf32, "L2">, memref<2x8xf32, "L2">) outs(%dw : memref<4x8xf32, "L2">)
// CHECK-NEXT:    %db = kernel.alloc : memref<4xf32, "L2">
// CHECK-NEXT:    kernel.reduce_sum ins(%d : memref<2x4xf32, "L2">) outs(%db : memref<4xf32, "L2">) {axes = array<i64: 0>}
// The updates write the parameters' buffers: no store, no copy.
// CHECK-NEXT:    kernel.sgd ins(%w, %dw : memref<4x8xf32, "L2">, memref<4x8xf32, "L2">) outs(%w : memref<4x8xf32, "L2">) {lr = 1.000000e-02 : f32}
// CHECK-NEXT:    kernel.sgd ins(%b, %db : memref<4xf32, "L2">, memref<4xf32, "L2">) outs(%b : memref<4xf32, "L2">) {lr = 1.000000e-02 : f32}
// CHECK-NEXT:    func.return %loss : memref<f32, "L2">
// CHECK-NEXT:  }

// L3-LABEL: func.func @step
// L3:         %w = kernel.get_param @w : memref<4x8xf32, "L3">
// L3:         %y = kernel.alloc : memref<2x4xf32, "L2">
// L3:         kernel.sgd ins(%w, %dw : memref<4x8xf32, "L3">, memref<4x8xf32, "L2">) outs(%w : memref<4x8xf32, "L3">) {lr = 1.000000e-02 : f32}

// L1-LABEL: func.func @step(%x: memref<2x8xf32, "L1">, %t: memref<2x4xf32, "L1">) -> memref<f32, "L1"> {
// L1:         %w = kernel.get_param @w : memref<4x8xf32, "L2">
// L1:         %y = kernel.alloc : memref<2x4xf32, "L1">

// The old value of @v is read after its store: it is copied out before the new value is
// copied in (tensor semantics: %v is the value loaded before the store).
func.func @read_after_store(%g: tensor<4xf32>) -> tensor<2x2xf32> {
  %v = nn.load @v : tensor<4xf32>
  %v2 = nn.reshape %v : tensor<4xf32> -> tensor<2x2xf32>
  %v_new = train.sgd %v, %g {lr = 1.0e-1 : f32} : tensor<4xf32>
  train.store %v_new, @v : tensor<4xf32>
  %y = nn.neg %v2 : tensor<2x2xf32>
  func.return %y : tensor<2x2xf32>
}

// CHECK-LABEL: func.func @read_after_store(%g: memref<4xf32, "L2">) -> memref<2x2xf32, "L2"> {
// CHECK-NEXT:    %v = kernel.get_param @v : memref<4xf32, "L2">
// CHECK-NEXT:    %v2 = kernel.view %v : memref<4xf32, "L2"> -> memref<2x2xf32, "L2">
// CHECK-NEXT:    %v_new = kernel.alloc : memref<4xf32, "L2">
// CHECK-NEXT:    kernel.sgd ins(%v, %g : memref<4xf32, "L2">, memref<4xf32, "L2">) outs(%v_new : memref<4xf32, "L2">) {lr = 1.000000e-01 : f32}
// CHECK-NEXT:    %v_old = kernel.alloc : memref<4xf32, "L2">
// CHECK-NEXT:    kernel.copy %v, %v_old : memref<4xf32, "L2">, memref<4xf32, "L2">
// CHECK-NEXT:    %v2_1 = kernel.view %v_old : memref<4xf32, "L2"> -> memref<2x2xf32, "L2">
// CHECK-NEXT:    kernel.copy %v_new, %v : memref<4xf32, "L2">, memref<4xf32, "L2">
// CHECK-NEXT:    %y = kernel.alloc : memref<2x2xf32, "L2">
// CHECK-NEXT:    kernel.neg ins(%v2_1 : memref<2x2xf32, "L2">) outs(%y : memref<2x2xf32, "L2">)
// CHECK-NEXT:    func.return %y : memref<2x2xf32, "L2">

// A buffer read later through a view of a view is not written over.
func.func @view_chain(%x: tensor<2x4xf32>) -> tensor<8xf32> {
  %a = nn.neg %x : tensor<2x4xf32>
  %v1 = nn.reshape %a : tensor<2x4xf32> -> tensor<4x2xf32>
  %v2 = nn.reshape %v1 : tensor<4x2xf32> -> tensor<8xf32>
  %r = nn.relu %a : tensor<2x4xf32>
  %rr = nn.reshape %r : tensor<2x4xf32> -> tensor<8xf32>
  %s = nn.add %v2, %rr : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  func.return %s : tensor<8xf32>
}

// CHECK-LABEL: func.func @view_chain
// CHECK:         %v2 = kernel.view %v1 : memref<4x2xf32, "L2"> -> memref<8xf32, "L2">
// CHECK-NEXT:    %r = kernel.alloc : memref<2x4xf32, "L2">
// CHECK-NEXT:    kernel.relu ins(%a : memref<2x4xf32, "L2">) outs(%r : memref<2x4xf32, "L2">)
// CHECK:         kernel.add ins(%v2, %rr : memref<8xf32, "L2">, memref<8xf32, "L2">) outs(%s : memref<8xf32, "L2">)

// TWICE: edge-opt: error: pass failed: bufferize: @step is already at the buffer level
