// The dma dialect round-trips: a 2-D box of an L2 weight into an L1 tile and back, a
// contiguous 1-D copy from L3, and the waits.
// RUN: edge-opt %s | filecheck %s
// RUN: edge-opt %s | edge-opt | filecheck %s

func.func @tiles(%w: memref<64x256xf32, "L2">, %t: memref<16x64xf32, "L1">, %h: memref<1024xf32, "L3">, %b: memref<1024xf32, "L2">) {
  // CHECK:      %0 = dma.start %w, %t {shape = array<i64: 16, 64>, source_offset = 128 : i64, source_strides = array<i64: 256, 1>, dest_strides = array<i64: 64, 1>} : memref<64x256xf32, "L2">, memref<16x64xf32, "L1">
  // CHECK-NEXT: dma.wait %0
  %0 = dma.start %w, %t {shape = array<i64: 16, 64>, source_offset = 128 : i64, source_strides = array<i64: 256, 1>, dest_strides = array<i64: 64, 1>} : memref<64x256xf32, "L2">, memref<16x64xf32, "L1">
  dma.wait %0
  // CHECK-NEXT: %1 = dma.start %t, %w {shape = array<i64: 16, 64>, source_strides = array<i64: 64, 1>, dest_offset = 4096 : i64, dest_strides = array<i64: 256, 1>} : memref<16x64xf32, "L1">, memref<64x256xf32, "L2">
  %1 = dma.start %t, %w {shape = array<i64: 16, 64>, source_strides = array<i64: 64, 1>, dest_offset = 4096 : i64, dest_strides = array<i64: 256, 1>} : memref<16x64xf32, "L1">, memref<64x256xf32, "L2">
  // CHECK-NEXT: %2 = dma.start %h, %b {shape = array<i64: 1024>, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<1024xf32, "L3">, memref<1024xf32, "L2">
  %2 = dma.start %h, %b {shape = array<i64: 1024>, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<1024xf32, "L3">, memref<1024xf32, "L2">
  // CHECK-NEXT: dma.wait %2
  // CHECK-NEXT: dma.wait %1
  dma.wait %2
  dma.wait %1
  func.return
}
