// A softmax keeps each row whole: one row in and one row out are 8,000 B, two slots
// each 16,000 B. With 12,000 B of L1 the smallest double-buffered tiling does not fit
// and the single-buffered one does: tile-l1 takes it and marks the schedule
// `single_buffer`, and insert-dma gives each operand one L1 slot (a DMA waits before
// the compute that needs it). With 7,000 B neither fits: the error gives what one slot
// per operand needs.

// RUN: edge-opt %s -p 'lower-to-buffers{soc=gap9 l1-bytes=12000}' | filecheck %s
// RUN: not edge-opt %s -p 'lower-to-buffers{soc=gap9 l1-bytes=7000}' 2>&1 | filecheck %s --check-prefix=SMALL

// CHECK:      builtin.module attributes {kernel.memory = {L1 = {arena = 8000 : i64
// CHECK:        %0 = tile.schedule {{{.*}}single_buffer, extents = array<i64: 2, 1000>, sizes = array<i64: 1, 1000>
// CHECK-NEXT:   %x_in0 = kernel.alloc {offset = 0 : i64} : memref<1x1000xf32, "L1">
// CHECK-NEXT:   %y_out0 = kernel.alloc {offset = 4000 : i64} : memref<1x1000xf32, "L1">
// CHECK-NEXT:   tile.for %t in %0 {
// CHECK:          %2 = dma.start %x_1, %1
// CHECK-NEXT:     dma.wait %2
// CHECK:          kernel.softmax ins(%3 : memref<1x1000xf32, "L1">) outs(%4 : memref<1x1000xf32, "L1">)

// SMALL: edge-opt: error: pass failed: tile-l1: kernel.softmax in @forward does not fit L1 (7,000 B): its smallest tiling needs 8,000 B (operands 8,000 B, 8,000 B); give more L1 (l1-bytes) or a SoC with more

builtin.module {
  func.func @forward(%x: tensor<2x1000xf32>) -> tensor<2x1000xf32> {
    %y = nn.softmax %x : tensor<2x1000xf32>
    func.return %y : tensor<2x1000xf32>
  }
}
