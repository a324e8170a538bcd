// Input of passes/plan-memory-invalid.mlir: activations that do not fit GAP9's L1.
func.func @forward(%x: memref<20000xf32, "L1">) -> memref<20000xf32, "L1"> {
  %a = kernel.alloc : memref<20000xf32, "L1">
  kernel.exp ins(%x : memref<20000xf32, "L1">) outs(%a : memref<20000xf32, "L1">)
  %b = kernel.alloc : memref<20000xf32, "L1">
  kernel.add ins(%a, %x : memref<20000xf32, "L1">, memref<20000xf32, "L1">) outs(%b : memref<20000xf32, "L1">)
  func.return %b : memref<20000xf32, "L1">
}
