// plan-memory gives every kernel.alloc an offset in the arena of its level (buffers live
// at the same time never overlap; a buffer whose life is over leaves its place to
// later ones), parameters consecutive offsets in their level's persistent region, and
// records the figures per level in the module's kernel.memory attribute: the arena
// (planned peak; the largest over functions, which never run at the same time), the
// lower bound (largest sum of simultaneously live bytes), naive (no reuse), persistent
// and constant bytes. Sizes are rounded up to the alignment.

// RUN: edge-opt %s -p plan-memory | filecheck %s
// RUN: edge-opt %s -p "plan-memory{alignment=64}" | filecheck %s --check-prefix=ALIGN
// RUN: edge-opt %s -p "plan-memory{soc=gap9}" | filecheck %s --check-prefix=GAP9

nn.param trainable @w : tensor<4x8xf32> {kernel.level = "L2"}
nn.param trainable @b : tensor<4xf32> {kernel.level = "L2"}
nn.param @frozen : tensor<3xf32> {kernel.level = "L3"}

// CHECK:      builtin.module attributes {kernel.memory = {
// CHECK-SAME:   L1 = {arena = 64 : i64, constants = 0 : i64, lower_bound = 64 : i64, naive = 80 : i64, persistent = 0 : i64},
// CHECK-SAME:   L2 = {arena = 96 : i64, constants = 16 : i64, lower_bound = 96 : i64, naive = 128 : i64, persistent = 144 : i64},
// CHECK-SAME:   L3 = {arena = 0 : i64, constants = 0 : i64, lower_bound = 0 : i64, naive = 0 : i64, persistent = 16 : i64}}, kernel.soc = "host"} {
// CHECK-NEXT:   nn.param trainable @w : tensor<4x8xf32> {kernel.level = "L2", kernel.offset = 0 : i64}
// CHECK-NEXT:   nn.param trainable @b : tensor<4xf32> {kernel.level = "L2", kernel.offset = 128 : i64}
// CHECK-NEXT:   nn.param @frozen : tensor<3xf32> {kernel.level = "L3", kernel.offset = 0 : i64}

// ALIGN:      builtin.module attributes {kernel.memory = {
// ALIGN-SAME:   L1 = {arena = 128 : i64, constants = 0 : i64, lower_bound = 128 : i64, naive = 192 : i64, persistent = 0 : i64},
// ALIGN-SAME:   L2 = {arena = 192 : i64, constants = 64 : i64, lower_bound = 192 : i64, naive = 256 : i64, persistent = 192 : i64},
// ALIGN-SAME:   L3 = {arena = 0 : i64, constants = 0 : i64, lower_bound = 0 : i64, naive = 0 : i64, persistent = 64 : i64}}, kernel.soc = "host"} {

// GAP9:       builtin.module attributes {kernel.memory = {

func.func @forward(%x: memref<2x8xf32, "L2">) -> memref<2x4xf32, "L2"> {
  %w = kernel.get_param @w : memref<4x8xf32, "L2">
  %b = kernel.get_param @b : memref<4xf32, "L2">
  %y = kernel.alloc : memref<2x4xf32, "L2">
  kernel.linear ins(%x, %w, %b : memref<2x8xf32, "L2">, memref<4x8xf32, "L2">, memref<4xf32, "L2">) outs(%y : memref<2x4xf32, "L2">)
  %e = kernel.alloc : memref<2x4xf32, "L2">
  kernel.exp ins(%y : memref<2x4xf32, "L2">) outs(%e : memref<2x4xf32, "L2">)
  %s = kernel.alloc : memref<2x4xf32, "L2">
  kernel.add ins(%e, %y : memref<2x4xf32, "L2">, memref<2x4xf32, "L2">) outs(%s : memref<2x4xf32, "L2">)
  %t = kernel.alloc : memref<2x4xf32, "L2">
  kernel.tanh ins(%s : memref<2x4xf32, "L2">) outs(%t : memref<2x4xf32, "L2">)
  func.return %t : memref<2x4xf32, "L2">
}

// %y, %e and %s are live together (the add reads %e and %y); %t reuses %y's place.
// CHECK-LABEL: func.func @forward
// CHECK:         %y = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">
// CHECK:         %e = kernel.alloc {offset = 32 : i64} : memref<2x4xf32, "L2">
// CHECK:         %s = kernel.alloc {offset = 64 : i64} : memref<2x4xf32, "L2">
// CHECK:         %t = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">

// ALIGN-LABEL: func.func @forward
// ALIGN:         %y = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">
// ALIGN:         %e = kernel.alloc {offset = 64 : i64} : memref<2x4xf32, "L2">
// ALIGN:         %s = kernel.alloc {offset = 128 : i64} : memref<2x4xf32, "L2">
// ALIGN:         %t = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">

// A second function with its own buffers: they share the arena with @forward's. A
// buffer is live through the views of it (%a until the copy); L1 buffers are planned in
// the L1 arena; an unused buffer (%n) lives at its alloc only; a constant is counted
// once per function.
func.func @other(%x: memref<2x4xf32, "L2">) -> memref<2x4xf32, "L2"> {
  %c = kernel.constant dense<2.0> : tensor<f32> -> memref<f32, "L2">
  %a = kernel.alloc : memref<2x4xf32, "L1">
  kernel.mul ins(%x, %c : memref<2x4xf32, "L2">, memref<f32, "L2">) outs(%a : memref<2x4xf32, "L1">)
  %v = kernel.view %a : memref<2x4xf32, "L1"> -> memref<8xf32, "L1">
  %n = kernel.alloc : memref<4xf32, "L1">
  %u = kernel.alloc : memref<8xf32, "L1">
  kernel.neg ins(%v : memref<8xf32, "L1">) outs(%u : memref<8xf32, "L1">)
  %r = kernel.alloc : memref<2x4xf32, "L2">
  kernel.copy %a, %r : memref<2x4xf32, "L1">, memref<2x4xf32, "L2">
  func.return %r : memref<2x4xf32, "L2">
}

// CHECK-LABEL: func.func @other
// CHECK:         %a = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L1">
// CHECK:         %n = kernel.alloc {offset = 32 : i64} : memref<4xf32, "L1">
// CHECK:         %u = kernel.alloc {offset = 32 : i64} : memref<8xf32, "L1">
// CHECK:         %r = kernel.alloc {offset = 0 : i64} : memref<2x4xf32, "L2">
