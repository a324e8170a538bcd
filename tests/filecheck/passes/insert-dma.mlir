// insert-dma moves the tiles of each tile.for to L1: L1 slots (two per operand whose
// window changes: double buffering), the first tile's loads before the loop, and in
// the body: start loading tile t+1 (delta = 1, only a window's first tile loads it),
// wait for tile t's loads, compute on the slots, wait for tile t-1's stores, start
// storing tile t (only a window's last tile stores it). Tokens pass between tiles as
// iter_args; the loop's results are waited for after it. An L3 operand is staged whole
// through L2. Without double buffering each tile loads, waits, computes, stores, waits.

// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024},insert-dma" | filecheck %s
// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024 double-buffer=false},insert-dma{double-buffer=false}" | filecheck %s --check-prefix=SINGLE
// RUN: edge-opt %s -p "tile-l1{soc=gap9 l1-bytes=1024},insert-dma,insert-dma" | filecheck %s

func.func @forward(%x: memref<8x32xf32, "L2">, %p: memref<16xf32, "L3">) -> memref<8x32xf32, "L2"> {
  %y = kernel.alloc : memref<8x32xf32, "L2">
  kernel.relu ins(%x : memref<8x32xf32, "L2">) outs(%y : memref<8x32xf32, "L2">)
  kernel.neg ins(%p : memref<16xf32, "L3">) outs(%p : memref<16xf32, "L3">)
  func.return %y : memref<8x32xf32, "L2">
}

// CHECK:      %[[S:.*]] = tile.schedule {{.*}}extents = array<i64: 8, 32>, sizes = array<i64: 2, 32>
// CHECK-NEXT: %[[X0:.*]] = kernel.alloc : memref<2x32xf32, "L1">
// CHECK-NEXT: %[[X1:.*]] = kernel.alloc : memref<2x32xf32, "L1">
// CHECK-NEXT: %[[Y0:.*]] = kernel.alloc : memref<2x32xf32, "L1">
// CHECK-NEXT: %[[Y1:.*]] = kernel.alloc : memref<2x32xf32, "L1">
// CHECK-NEXT: %[[W0:.*]] = tile.window %x, %[[S]] {map = array<i64: 0, 1>, when = "first"}
// CHECK-NEXT: %[[SL0:.*]] = tile.slot %[[S]] slots(%[[X0]], %[[X1]]) {map = array<i64: 0, 1>}
// CHECK-NEXT: %[[LOAD0:.*]] = dma.start %[[W0]], %[[SL0]] : memref<2x32xf32, "L2">, memref<2x32xf32, "L1">
// CHECK-NEXT: %[[NONE:.*]] = dma.done
// CHECK-NEXT: %[[R0:.*]], %[[R1:.*]] = tile.for %[[T:.*]] in %[[S]] iter_args(%[[LOADED:.*]] = %[[LOAD0]], %[[STORED:.*]] = %[[NONE]]) -> (!dma.token, !dma.token) {
// CHECK-NEXT:   %[[WN:.*]] = tile.window %x, %[[S]] at %[[T]] {map = array<i64: 0, 1>, delta = 1 : i64, when = "first"}
// CHECK-NEXT:   %[[SN:.*]] = tile.slot %[[S]] at %[[T]] slots(%[[X0]], %[[X1]]) {map = array<i64: 0, 1>, delta = 1 : i64}
// CHECK-NEXT:   %[[NEXT:.*]] = dma.start %[[WN]], %[[SN]]
// CHECK-NEXT:   dma.wait %[[LOADED]]
// CHECK-NEXT:   %[[IN:.*]] = tile.slot %[[S]] at %[[T]] slots(%[[X0]], %[[X1]]) {map = array<i64: 0, 1>}
// CHECK-NEXT:   %[[OUT:.*]] = tile.slot %[[S]] at %[[T]] slots(%[[Y0]], %[[Y1]]) {map = array<i64: 0, 1>}
// CHECK-NEXT:   kernel.relu ins(%[[IN]] : memref<2x32xf32, "L1">) outs(%[[OUT]] : memref<2x32xf32, "L1">)
// CHECK-NEXT:   dma.wait %[[STORED]]
// CHECK-NEXT:   %[[WY:.*]] = tile.window %y, %[[S]] at %[[T]] {map = array<i64: 0, 1>, when = "last"}
// CHECK-NEXT:   %[[STORE:.*]] = dma.start %[[OUT]], %[[WY]] : memref<2x32xf32, "L1">, memref<2x32xf32, "L2">
// CHECK-NEXT:   tile.yield %[[NEXT]], %[[STORE]] : !dma.token, !dma.token
// CHECK-NEXT: }
// CHECK-NEXT: dma.wait %[[R0]]
// CHECK-NEXT: dma.wait %[[R1]]

// The L3 parameter: staged through L2, one slot each way (its window never changes).
// CHECK:      %[[PIN:.*]] = kernel.alloc : memref<16xf32, "L1">
// CHECK-NEXT: %[[POUT:.*]] = kernel.alloc : memref<16xf32, "L1">
// CHECK-NEXT: %[[STAGE:.*]] = kernel.alloc : memref<16xf32, "L2">
// CHECK-NEXT: %[[IN3:.*]] = dma.start %p, %[[STAGE]] : memref<16xf32, "L3">, memref<16xf32, "L2">
// CHECK-NEXT: dma.wait %[[IN3]]
// CHECK:      kernel.neg ins(%{{.*}} : memref<16xf32, "L1">) outs(%{{.*}} : memref<16xf32, "L1">)
// CHECK:      %[[OUT3:.*]] = dma.start %[[STAGE]], %p : memref<16xf32, "L2">, memref<16xf32, "L3">
// CHECK-NEXT: dma.wait %[[OUT3]]
// CHECK-NEXT: func.return %y

// SINGLE:      %[[S:.*]] = tile.schedule {{.*}}extents = array<i64: 8, 32>
// SINGLE-NEXT: %[[X0:.*]] = kernel.alloc : memref<{{.*}}xf32, "L1">
// SINGLE-NEXT: %[[Y0:.*]] = kernel.alloc : memref<{{.*}}xf32, "L1">
// SINGLE-NEXT: tile.for %[[T:.*]] in %[[S]] {
// SINGLE-NEXT:   %[[W:.*]] = tile.window %x, %[[S]] at %[[T]] {map = array<i64: 0, 1>, when = "first"}
// SINGLE-NEXT:   %[[SL:.*]] = tile.slot %[[S]] at %[[T]] slots(%[[X0]]) {map = array<i64: 0, 1>}
// SINGLE-NEXT:   %[[L:.*]] = dma.start %[[W]], %[[SL]]
// SINGLE-NEXT:   dma.wait %[[L]]
// SINGLE:        kernel.relu
// SINGLE:        %[[ST:.*]] = dma.start
// SINGLE-NEXT:   dma.wait %[[ST]]
// SINGLE-NEXT:   tile.yield
