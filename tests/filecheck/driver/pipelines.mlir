// -p and --pipeline, --print-ir-after-all, --list-pipelines.

// RUN: edge-opt --list-pipelines | filecheck %s --check-prefix=LIST
// LIST: infer
// LIST-NEXT: inference only: raise-layer-norm, raise-attention, [tile-attention-depth-first,] [fuse-attention-weights,] canonicalize, cse, dce

// RUN: edge-opt %s -p cse | filecheck %s --check-prefix=CSE
// CSE:      %a = nn.relu %x : tensor<2x3xf32>
// CSE-NEXT: %s = nn.add %a, %a

// RUN: edge-opt %s --pipeline infer --print-ir-after-all | filecheck %s --check-prefix=AFTER
// AFTER:      // -----// IR after canonicalize //----- //
// AFTER-NOT:  %dead
// AFTER:      %b = nn.relu %x
// AFTER:      // -----// IR after cse //----- //
// AFTER-NOT:  %b = nn.relu
// AFTER:      %s = nn.add %a, %a
// AFTER:      // -----// IR after dce //----- //

// -p and --pipeline apply in the order given on the command line, each repeatable.
// RUN: edge-opt %s -p dce --pipeline infer -p cse --print-ir-after-all | filecheck %s --check-prefix=ORDER
// ORDER:      // -----// IR after dce //----- //
// ORDER:      // -----// IR after raise-layer-norm //----- //
// ORDER:      // -----// IR after dce //----- //
// ORDER:      // -----// IR after cse //----- //
// ORDER-NOT:  // -----// IR after

func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %a = nn.relu %x : tensor<2x3xf32>
  %b = nn.relu %x : tensor<2x3xf32>
  %dead = nn.sigmoid %x : tensor<2x3xf32>
  %s = nn.add %a, %b : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %s : tensor<2x3xf32>
}
