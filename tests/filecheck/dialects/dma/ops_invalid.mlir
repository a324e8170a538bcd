// Every verifier rule of the dma dialect names the op and the rule broken.
// RUN: edge-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @levels(%a: memref<8xf32, "L1">, %b: memref<8xf32, "L3">) {
  // CHECK: dma.start: no DMA engine copies L1 -> L3 (it connects L3 <-> L2 and L2 <-> L1)
  %0 = dma.start %a, %b {shape = array<i64: 8>, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<8xf32, "L1">, memref<8xf32, "L3">
  func.return
}

// -----

func.func @same_level(%a: memref<8xf32, "L2">, %b: memref<8xf32, "L2">) {
  // CHECK: dma.start: no DMA engine copies L2 -> L2
  %0 = dma.start %a, %b {shape = array<i64: 8>, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<8xf32, "L2">, memref<8xf32, "L2">
  func.return
}

// -----

func.func @elements(%a: memref<8xf32, "L2">, %b: memref<8xi32, "L1">) {
  // CHECK: dma.start: source and dest element types differ (f32 and i32)
  %0 = dma.start %a, %b {shape = array<i64: 8>, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<8xf32, "L2">, memref<8xi32, "L1">
  func.return
}

// -----

func.func @rank(%a: memref<2x2x2x2xf32, "L2">, %b: memref<16xf32, "L1">) {
  // CHECK: dma.start: shape [2, 2, 2, 2] must have 1 to 3 axes, each at least 1
  %0 = dma.start %a, %b {shape = array<i64: 2, 2, 2, 2>, source_strides = array<i64: 8, 4, 2, 1>, dest_strides = array<i64: 8, 4, 2, 1>} : memref<2x2x2x2xf32, "L2">, memref<16xf32, "L1">
  func.return
}

// -----

func.func @strides(%a: memref<8x8xf32, "L2">, %b: memref<16xf32, "L1">) {
  // CHECK: dma.start: source_strides [1] must have one stride per axis of shape [2, 8]
  %0 = dma.start %a, %b {shape = array<i64: 2, 8>, source_strides = array<i64: 1>, dest_strides = array<i64: 8, 1>} : memref<8x8xf32, "L2">, memref<16xf32, "L1">
  func.return
}

// -----

func.func @source_bounds(%a: memref<8x8xf32, "L2">, %b: memref<16xf32, "L1">) {
  // CHECK: dma.start: the source box (offset 50, shape [2, 8], strides [8, 1]) reaches element 65 of a buffer of 64
  %0 = dma.start %a, %b {shape = array<i64: 2, 8>, source_offset = 50 : i64, source_strides = array<i64: 8, 1>, dest_strides = array<i64: 8, 1>} : memref<8x8xf32, "L2">, memref<16xf32, "L1">
  func.return
}

// -----

func.func @dest_bounds(%a: memref<8x8xf32, "L2">, %b: memref<16xf32, "L1">) {
  // CHECK: dma.start: the dest box (offset 0, shape [2, 8], strides [9, 1]) reaches element 16 of a buffer of 16
  %0 = dma.start %a, %b {shape = array<i64: 2, 8>, source_strides = array<i64: 8, 1>, dest_strides = array<i64: 9, 1>} : memref<8x8xf32, "L2">, memref<16xf32, "L1">
  func.return
}

// -----

func.func @overlap(%a: memref<8x8xf32, "L2">, %b: memref<16xf32, "L1">) {
  // CHECK: dma.start: dest_strides [4, 1] write two elements of shape [2, 8] to one address
  %0 = dma.start %a, %b {shape = array<i64: 2, 8>, source_strides = array<i64: 8, 1>, dest_strides = array<i64: 4, 1>} : memref<8x8xf32, "L2">, memref<16xf32, "L1">
  func.return
}

// -----

func.func @negative(%a: memref<8xf32, "L2">, %b: memref<8xf32, "L1">) {
  // CHECK: dma.start: source offset and strides must be >= 0
  %0 = dma.start %a, %b {shape = array<i64: 8>, source_offset = -1 : i64, source_strides = array<i64: 1>, dest_strides = array<i64: 1>} : memref<8xf32, "L2">, memref<8xf32, "L1">
  func.return
}
