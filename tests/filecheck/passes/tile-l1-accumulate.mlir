// An output that does not follow a cut dimension sums over it: tile-l1 gives it an L1
// partial buffer that each tile's kernel writes (through a tile.slot: a ragged tile
// uses a prefix of it), and a tile.accumulate that copies the
// first tile of its window and adds the others. The summed dimension is visited inside
// the ones the output follows, so a window's tiles are consecutive.

// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024}" | filecheck %s

func.func @forward(%dy: memref<64x4xf32, "L2">, %x: memref<64x4xf32, "L2">) -> memref<4x4xf32, "L2"> {
  %dw = kernel.alloc : memref<4x4xf32, "L2">
  kernel.linear_grad_weight ins(%dy, %x : memref<64x4xf32, "L2">, memref<64x4xf32, "L2">) outs(%dw : memref<4x4xf32, "L2">)
  func.return %dw : memref<4x4xf32, "L2">
}

// CHECK:      %[[S:.*]] = tile.schedule {{.*}}extents = array<i64: 64, 4, 4>, sizes = array<i64: [[ROWS:[0-9]+]], 4, 4>
// CHECK-NEXT: %[[P:.*]] = kernel.alloc : memref<4x4xf32, "L1">
// CHECK-NEXT: tile.for %[[T:.*]] in %[[S]] {
// CHECK:        %[[W:.*]] = tile.window %dw, %[[S]] at %[[T]] {map = array<i64: 1, 2>} : memref<4x4xf32, "L2"> -> memref<4x4xf32, "L2">
// CHECK-NEXT:   %[[PT:.*]] = tile.slot %[[S]] at %[[T]] slots(%[[P]]) {map = array<i64: 1, 2>} : memref<4x4xf32, "L1"> -> memref<4x4xf32, "L1">
// CHECK-NEXT:   kernel.linear_grad_weight ins({{.*}} : memref<[[ROWS]]x4xf32, "L2">, memref<[[ROWS]]x4xf32, "L2">) outs(%[[PT]] : memref<4x4xf32, "L1">)
// CHECK-NEXT:   tile.accumulate %[[S]] at %[[T]] %[[PT]] into %[[W]] {map = array<i64: 1, 2>} : memref<4x4xf32, "L1">, memref<4x4xf32, "L2">
// CHECK-NEXT:   tile.yield
