// tile-l1 turns each kernel call into a loop nest over tiles whose double-buffered
// working set fits the L1 budget: a tile.schedule (extents of the iteration space, tile
// sizes, loop order, how the search chose it and its estimated cycles) and a tile.for
// whose body runs the same kernel op on the windows of one tile. A weight gradient cut
// along its rows would sum over them; here the search cuts the in features instead.

// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=2048}" | filecheck %s
// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=65536}" | filecheck %s --check-prefix=WHOLE
// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=2048},tile-l1{soc=gap9 l1-bytes=2048}" | filecheck %s
// RUN: not edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=256}" 2>&1 | filecheck %s --check-prefix=SMALL
// RUN: not edge-opt %s -p "tile-l1" 2>&1 | filecheck %s --check-prefix=HOST

func.func @forward(%x: memref<8x32xf32, "L2">, %w: memref<16x32xf32, "L2">, %b: memref<16xf32, "L2">) -> memref<8x16xf32, "L2"> {
  %y = kernel.alloc : memref<8x16xf32, "L2">
  kernel.linear ins(%x, %w, %b : memref<8x32xf32, "L2">, memref<16x32xf32, "L2">, memref<16xf32, "L2">) outs(%y : memref<8x16xf32, "L2">)
  %dw = kernel.alloc : memref<16x32xf32, "L2">
  kernel.linear_grad_weight ins(%y, %x : memref<8x16xf32, "L2">, memref<8x32xf32, "L2">) outs(%dw : memref<16x32xf32, "L2">)
  func.return %y : memref<8x16xf32, "L2">
}

// CHECK:      %[[S:.*]] = tile.schedule {search = "exhaustive", estimated_cycles = {{[0-9]+}} : i64, extents = array<i64: 8, 16, 32>, sizes = array<i64: 2, 4, 32>, order = array<i64: 2, 0, 1>}
// CHECK-NEXT: tile.for %[[T:.*]] in %[[S]] {
// CHECK-NEXT:   %[[X:.*]] = tile.window %x, %[[S]] at %[[T]] {map = array<i64: 0, 2>} : memref<8x32xf32, "L2"> -> memref<2x32xf32, "L2">
// CHECK-NEXT:   %[[W:.*]] = tile.window %w, %[[S]] at %[[T]] {map = array<i64: 1, 2>} : memref<16x32xf32, "L2"> -> memref<4x32xf32, "L2">
// CHECK-NEXT:   %[[B:.*]] = tile.window %b, %[[S]] at %[[T]] {map = array<i64: 1>} : memref<16xf32, "L2"> -> memref<4xf32, "L2">
// CHECK-NEXT:   %[[Y:.*]] = tile.window %y, %[[S]] at %[[T]] {map = array<i64: 0, 1>} : memref<8x16xf32, "L2"> -> memref<2x4xf32, "L2">
// CHECK-NEXT:   kernel.linear ins(%[[X]], %[[W]], %[[B]] : memref<2x32xf32, "L2">, memref<4x32xf32, "L2">, memref<4xf32, "L2">) outs(%[[Y]] : memref<2x4xf32, "L2">)
// CHECK-NEXT:   tile.yield
// CHECK-NEXT: }
// CHECK:      tile.schedule {{.*}}extents = array<i64: 8, 16, 32>, sizes = array<i64: 8, 16, 8>
// CHECK:      kernel.linear_grad_weight ins({{.*}} : memref<8x16xf32, "L2">, memref<8x8xf32, "L2">) outs({{.*}} : memref<16x8xf32, "L2">)
// CHECK-NOT:  tile.accumulate

// WHOLE: tile.schedule {search = "exhaustive", estimated_cycles = {{[0-9]+}} : i64, extents = array<i64: 8, 16, 32>, sizes = array<i64: 8, 16, 32>
// WHOLE: kernel.linear ins({{.*}} : memref<8x32xf32, "L2">, memref<16x32xf32, "L2">, memref<16xf32, "L2">) outs({{.*}} : memref<8x16xf32, "L2">)

// SMALL: edge-opt: error: pass failed: tile-l1: kernel.linear in @forward does not fit L1 (256 B): its smallest tiling needs {{[0-9,]+}} B (operands 1,024 B, 2,048 B, 64 B, 512 B); give more L1 (l1-bytes) or a SoC with more

// HOST: edge-opt: error: pass failed: tile-l1: SoC host has no [dma] table: its cores compute on L2, there is nothing to tile for (give soc=gap9, soc=siracusa or a SoC file with [dma] and [compute] tables)
