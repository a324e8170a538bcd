// A splat constant keeps one element, never the whole tensor: cse, canonicalize and the
// printers handle a 40 GB splat in no time and memory. The generic form shows the one
// element; both forms parse back.
// RUN: edge-opt %s -p cse,canonicalize | filecheck %s
// RUN: edge-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: edge-opt %s --print-op-generic | edge-opt -p cse | filecheck %s

// CHECK-LABEL: func.func @forward
func.func @forward(%x: tensor<100000x100000xf32>) -> tensor<100000x100000xf32> {
  // CHECK-NEXT: %c = nn.constant dense<1.000000e+00> : tensor<100000x100000xf32>
  // CHECK-NEXT: %y = nn.add %x, %c
  // CHECK-NEXT: %z = nn.add %y, %c
  // GENERIC: "nn.constant"() <{value = dense<1.000000e+00> : tensor<f32>}> : () -> tensor<100000x100000xf32>
  %c = nn.constant dense<1.0> : tensor<100000x100000xf32>
  %c2 = nn.constant dense<1.0> : tensor<100000x100000xf32>
  %y = nn.add %x, %c : (tensor<100000x100000xf32>, tensor<100000x100000xf32>) -> tensor<100000x100000xf32>
  %z = nn.add %y, %c2 : (tensor<100000x100000xf32>, tensor<100000x100000xf32>) -> tensor<100000x100000xf32>
  func.return %z : tensor<100000x100000xf32>
}
