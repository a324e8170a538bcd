// A convolution cut by output rows: its input rows overlap from one tile to the next.
// tile-l1 gives the input window a halo (axis 2 follows the rows with stride 1, each
// row reaching 3 input rows starting 1 early: array<i64: 2, 1, 3, 1>); the window is
// those rows clipped to the input, tile.halo pads them with zeros to the rows the
// kernel reads, and the kernel inside the nest has no row padding of its own.
// insert-dma gives the padded tile L1 slots: tile.pad writes the zero rows and is the
// view where the DMA copy of the clipped window lands.

// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024}" | filecheck %s
// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024},insert-dma" | filecheck %s --check-prefix=DMA

func.func @forward(%x: memref<1x2x16x8xf32, "L2">, %w: memref<2x2x3x3xf32, "L2">) -> memref<1x2x16x8xf32, "L2"> {
  %y = kernel.alloc : memref<1x2x16x8xf32, "L2">
  kernel.conv2d ins(%x, %w : memref<1x2x16x8xf32, "L2">, memref<2x2x3x3xf32, "L2">) outs(%y : memref<1x2x16x8xf32, "L2">) {padding = array<i64: 1, 1, 1, 1>}
  func.return %y : memref<1x2x16x8xf32, "L2">
}

// CHECK:      %[[S:.*]] = tile.schedule {{.*}}extents = array<i64: 1, 2, 2, 16>, sizes = array<i64: 1, 2, 2, 2>
// CHECK-NEXT: tile.for %[[T:.*]] in %[[S]] {
// CHECK-NEXT:   %[[XW:.*]] = tile.window %x, %[[S]] at %[[T]] {map = array<i64: 0, 2, 3, -1>, halo = array<i64: 2, 1, 3, 1>} : memref<1x2x16x8xf32, "L2"> -> memref<1x2x4x8xf32, "L2">
// CHECK-NEXT:   %[[XH:.*]] = tile.halo %[[XW]], %[[S]] at %[[T]] {map = array<i64: 0, 2, 3, -1>, halo = array<i64: 2, 1, 3, 1>} : memref<1x2x4x8xf32, "L2"> -> memref<1x2x4x8xf32, "L1">
// CHECK:        %[[YW:.*]] = tile.window %y, %[[S]] at %[[T]] {map = array<i64: 0, 1, 3, -1>} : memref<1x2x16x8xf32, "L2"> -> memref<1x2x2x8xf32, "L2">
// CHECK-NEXT:   kernel.conv2d ins(%[[XH]], %{{.*}} : memref<1x2x4x8xf32, "L1">, memref<2x2x3x3xf32, "L2">) outs(%[[YW]] : memref<1x2x2x8xf32, "L2">) {padding = array<i64: 0, 1, 0, 1>}

// DMA:      %[[X0:.*]] = kernel.alloc : memref<1x2x4x8xf32, "L1">
// DMA-NEXT: %[[X1:.*]] = kernel.alloc : memref<1x2x4x8xf32, "L1">
// DMA:      tile.for %[[T:.*]] in
// DMA-NEXT:   %[[NEXT:.*]] = tile.window %x, %{{.*}} at %[[T]] {map = array<i64: 0, 2, 3, -1>, delta = 1 : i64, when = "first", halo = array<i64: 2, 1, 3, 1>}
// DMA-NEXT:   %[[SLOT:.*]] = tile.slot %{{.*}} at %[[T]] slots(%[[X0]], %[[X1]]) {map = array<i64: 0, 2, 3, -1>, delta = 1 : i64, halo = array<i64: 2, 1, 3, 1>}
// DMA-NEXT:   %[[IN:.*]] = tile.pad %[[SLOT]], %[[NEXT]], %{{.*}} at %[[T]] {map = array<i64: 0, 2, 3, -1>, delta = 1 : i64, halo = array<i64: 2, 1, 3, 1>} : memref<1x2x4x8xf32, "L1">, memref<1x2x4x8xf32, "L2"> -> memref<1x2x4x8xf32, "L1">
// DMA-NEXT:   dma.start %[[NEXT]], %[[IN]]
// DMA:        %[[X:.*]] = tile.slot %{{.*}} at %[[T]] slots(%[[X0]], %[[X1]]) {map = array<i64: 0, 2, 3, -1>, halo = array<i64: 2, 1, 3, 1>}
// DMA:        kernel.conv2d ins(%[[X]], %{{.*}} : memref<1x2x4x8xf32, "L1">, memref<2x2x3x3xf32, "L1">) {{.*}}{padding = array<i64: 0, 1, 0, 1>}
