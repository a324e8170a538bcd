// infer: graph raising and clean-ups; nothing trains (no @train_step, no optimizer state).
// RUN: edge-opt %examples/tiny_cnn.mlir --pipeline infer --print-ir-after-all | filecheck %s
// CHECK: IR after raise-layer-norm
// CHECK-NEXT: builtin.module {
// CHECK: IR after raise-attention
// CHECK: IR after canonicalize
// CHECK: IR after cse
// CHECK: IR after dce
// CHECK-NOT: IR after
// CHECK-NOT: @train_step
// CHECK-NOT: train.state
// CHECK: func.func @forward(%image: tensor<4x1x12x12xf32> {nn.name = "image"}) -> (tensor<4x10xf32> {nn.name = "logits"}) {

// The same pipeline through -p, with its options.
// RUN: edge-opt %examples/tiny_cnn.mlir -p 'infer{attention-rows=2 fuse-attention=true}' --print-ir-after-all | filecheck %s --check-prefix=OPTS
// OPTS: IR after raise-attention
// OPTS-NEXT: builtin.module {
// OPTS: IR after tile-attention-depth-first{rows=2}
// OPTS: IR after fuse-attention-weights
// OPTS: IR after dce
