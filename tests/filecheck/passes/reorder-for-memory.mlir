// reorder-for-memory runs the ops in an order of lower peak of live bytes: here the
// exp's 256 bytes die (reduced) before the tanh makes its own. The numbers of the
// peak before and after go to the module for `edge-opt report`.

// RUN: edge-opt %s -p reorder-for-memory | filecheck %s
// RUN: edge-opt %s -p reorder-for-memory --report | filecheck %s --check-prefix=REPORT

// CHECK:       builtin.module attributes {edge_opt.memory_passes = [{pass = "reorder-for-memory", function = "forward", peak_before = 516 : i64, peak_after = 264 : i64, extra_flops = 0 : i64, search = "exact"}]} {
// CHECK-NEXT:    func.func @forward(%x: tensor<1x64xf32>) -> tensor<1xf32> {
// CHECK-NEXT:      %a = nn.exp %x
// CHECK-NEXT:      %b = nn.reduce_sum %a
// CHECK-NEXT:      %c = nn.tanh %x
// CHECK-NEXT:      %d = nn.reduce_sum %c
// CHECK-NEXT:      %s = nn.add %b, %d

// REPORT:      memory passes (graph-level peak of the step's live values)
// REPORT:      reorder-for-memory  @forward  516 -> 264                     0            exact
// REPORT:      L2            288          288

func.func @forward(%x: tensor<1x64xf32>) -> tensor<1xf32> {
  %a = nn.exp %x : tensor<1x64xf32>
  %c = nn.tanh %x : tensor<1x64xf32>
  %b = nn.reduce_sum %a {axes = array<i64: 1>} : tensor<1x64xf32> -> tensor<1xf32>
  %d = nn.reduce_sum %c {axes = array<i64: 1>} : tensor<1x64xf32> -> tensor<1xf32>
  %s = nn.add %b, %d : (tensor<1xf32>, tensor<1xf32>) -> tensor<1xf32>
  func.return %s : tensor<1xf32>
}
