// A depthwise convolution (8 groups, 2 outputs each, a 1 x 9 kernel padded 4 left and
// right) on a 1-D signal laid out (N, C, 1, T): tile-l1 keeps the channels whole (a tile
// of channels would need its own `groups`) and cuts the time axis, the columns. Each
// tile of 64 output columns reads 72 input columns through a halo (axis 3, stride 1,
// span 9, 4 before), zero-padded at both ends of the signal, and the kernel inside the
// nest has its column padding removed (the slot holds it).

// RUN: edge-opt %s -p 'bufferize,tile-l1{soc=gap9 l1-bytes=16384}' | filecheck %s

// CHECK:      %0 = tile.schedule {{{.*}}extents = array<i64: 1, 512>, sizes = array<i64: 1, 64>, order = array<i64: 0, 1>}
// CHECK-NEXT: tile.for %t in %0 {
// CHECK-NEXT:   %x_1 = tile.window %x, %0 at %t {map = array<i64: 0, -1, -1, 1>, halo = array<i64: 3, 1, 9, 4>} : memref<1x8x1x512xf32, "L2"> -> memref<1x8x1x72xf32, "L2">
// CHECK-NEXT:   %x_halo = tile.halo %x_1, %0 at %t {map = array<i64: 0, -1, -1, 1>, halo = array<i64: 3, 1, 9, 4>} : memref<1x8x1x72xf32, "L2"> -> memref<1x8x1x72xf32, "L1">
// CHECK-NEXT:   %w_1 = tile.window %w, %0 at %t {map = array<i64: -1, -1, -1, -1>}
// CHECK-NEXT:   %y_1 = tile.window %y, %0 at %t {map = array<i64: 0, -1, -1, 1>} : memref<1x16x1x512xf32, "L2"> -> memref<1x16x1x64xf32, "L2">
// CHECK-NEXT:   kernel.conv2d ins(%x_halo, %w_1 : memref<1x8x1x72xf32, "L1">, memref<16x1x1x9xf32, "L2">) outs(%y_1 : memref<1x16x1x64xf32, "L2">) {groups = 8 : i64}

builtin.module {
  nn.param @w : tensor<16x1x1x9xf32> = dense<0.1> : tensor<16x1x1x9xf32>
  func.func @forward(%x: tensor<1x8x1x512xf32>) -> tensor<1x16x1x512xf32> {
    %w = nn.load @w : tensor<16x1x1x9xf32>
    %y = nn.conv2d %x, %w {padding = array<i64: 0, 4, 0, 4>, groups = 8 : i64} : (tensor<1x8x1x512xf32>, tensor<16x1x1x9xf32>) -> tensor<1x16x1x512xf32>
    func.return %y : tensor<1x16x1x512xf32>
  }
}
