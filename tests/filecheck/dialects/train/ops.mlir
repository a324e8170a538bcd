// Every train op prints in its custom form and parses back; the generic form round-trips too.
// RUN: edge-opt %s | filecheck %s
// RUN: edge-opt %s | edge-opt | filecheck %s
// RUN: edge-opt %s --print-op-generic | edge-opt | filecheck %s

// CHECK:      nn.param trainable @w : tensor<4x2x3x3xf32>
nn.param trainable @w : tensor<4x2x3x3xf32>
// CHECK-NEXT: nn.param @w_momentum : tensor<4x2x3x3xf32>
nn.param @w_momentum : tensor<4x2x3x3xf32>

// train.store is the only side effect: it names the parameter it writes.
// CHECK-LABEL: func.func @store
func.func @store(%g: tensor<4x2x3x3xf32>) {
  // CHECK-NEXT: %w = nn.load @w : tensor<4x2x3x3xf32>
  %w = nn.load @w : tensor<4x2x3x3xf32>
  // CHECK-NEXT: %b = nn.load @w_momentum : tensor<4x2x3x3xf32>
  %b = nn.load @w_momentum : tensor<4x2x3x3xf32>
  // CHECK-NEXT: %nw, %nb = train.sgd_momentum %w, %g, %b {lr = 1.000000e-02 : f32, momentum = 9.000000e-01 : f32, nesterov} : tensor<4x2x3x3xf32>
  %nw, %nb = train.sgd_momentum %w, %g, %b {lr = 1.0e-2 : f32, momentum = 9.0e-1 : f32, nesterov} : tensor<4x2x3x3xf32>
  // CHECK-NEXT: train.store %nw, @w : tensor<4x2x3x3xf32>
  train.store %nw, @w : tensor<4x2x3x3xf32>
  // CHECK-NEXT: train.store %nb, @w_momentum : tensor<4x2x3x3xf32>
  train.store %nb, @w_momentum : tensor<4x2x3x3xf32>
  func.return
}

// CHECK-LABEL: func.func @losses
func.func @losses(%logits: tensor<4x10xf32>, %labels: tensor<4xi64>, %labels32: tensor<4xi32>, %p: tensor<2x3xf64>, %t: tensor<2x3xf64>) -> (tensor<f32>, tensor<4x10xf32>, tensor<f32>, tensor<4x10xf32>, tensor<f64>, tensor<2x3xf64>, tensor<f64>, tensor<2x3xf64>) {
  // CHECK-NEXT: %ce = train.cross_entropy %logits, %labels : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
  %ce = train.cross_entropy %logits, %labels : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
  // CHECK-NEXT: %ceg = train.cross_entropy_grad %logits, %labels : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<4x10xf32>
  %ceg = train.cross_entropy_grad %logits, %labels : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<4x10xf32>
  // CHECK-NEXT: %ces = train.cross_entropy %logits, %labels32 {reduction = "sum"} : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<f32>
  %ces = train.cross_entropy %logits, %labels32 {reduction = "sum"} : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<f32>
  // CHECK-NEXT: %cesg = train.cross_entropy_grad %logits, %labels32 {reduction = "sum"} : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<4x10xf32>
  %cesg = train.cross_entropy_grad %logits, %labels32 {reduction = "sum"} : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<4x10xf32>
  // CHECK-NEXT: %mse = train.mse %p, %t : tensor<2x3xf64> -> tensor<f64>
  %mse = train.mse %p, %t : tensor<2x3xf64> -> tensor<f64>
  // CHECK-NEXT: %mseg = train.mse_grad %p, %t : tensor<2x3xf64>
  %mseg = train.mse_grad %p, %t : tensor<2x3xf64>
  // CHECK-NEXT: %mses = train.mse %p, %t {reduction = "sum"} : tensor<2x3xf64> -> tensor<f64>
  %mses = train.mse %p, %t {reduction = "sum"} : tensor<2x3xf64> -> tensor<f64>
  // CHECK-NEXT: %msesg = train.mse_grad %p, %t {reduction = "sum"} : tensor<2x3xf64>
  %msesg = train.mse_grad %p, %t {reduction = "sum"} : tensor<2x3xf64>
  func.return %ce, %ceg, %ces, %cesg, %mse, %mseg, %mses, %msesg : tensor<f32>, tensor<4x10xf32>, tensor<f32>, tensor<4x10xf32>, tensor<f64>, tensor<2x3xf64>, tensor<f64>, tensor<2x3xf64>
}

// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%dy: tensor<2x3xf32>, %s: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK-NEXT: %relu = train.relu_grad %dy, %s : tensor<2x3xf32>
  %relu = train.relu_grad %dy, %s : tensor<2x3xf32>
  // CHECK-NEXT: %sig = train.sigmoid_grad %relu, %s : tensor<2x3xf32>
  %sig = train.sigmoid_grad %relu, %s : tensor<2x3xf32>
  // CHECK-NEXT: %tanh = train.tanh_grad %sig, %s : tensor<2x3xf32>
  %tanh = train.tanh_grad %sig, %s : tensor<2x3xf32>
  // CHECK-NEXT: %silu = train.silu_grad %tanh, %s : tensor<2x3xf32>
  %silu = train.silu_grad %tanh, %s : tensor<2x3xf32>
  // CHECK-NEXT: %hs = train.hardswish_grad %silu, %s : tensor<2x3xf32>
  %hs = train.hardswish_grad %silu, %s : tensor<2x3xf32>
  // CHECK-NEXT: %erf = train.erf_grad %hs, %s : tensor<2x3xf32>
  %erf = train.erf_grad %hs, %s : tensor<2x3xf32>
  // CHECK-NEXT: %gelu = train.gelu_grad %erf, %s : tensor<2x3xf32>
  %gelu = train.gelu_grad %erf, %s : tensor<2x3xf32>
  // CHECK-NEXT: %gelu_t = train.gelu_grad %gelu, %s {approximate = "tanh"} : tensor<2x3xf32>
  %gelu_t = train.gelu_grad %gelu, %s {approximate = "tanh"} : tensor<2x3xf32>
  // CHECK-NEXT: %sm = train.softmax_grad %gelu_t, %s : tensor<2x3xf32>
  %sm = train.softmax_grad %gelu_t, %s : tensor<2x3xf32>
  // CHECK-NEXT: %sm0 = train.softmax_grad %sm, %s {axis = 0 : i64} : tensor<2x3xf32>
  %sm0 = train.softmax_grad %sm, %s {axis = 0 : i64} : tensor<2x3xf32>
  // CHECK-NEXT: %lsm = train.log_softmax_grad %sm0, %s {axis = -2 : i64} : tensor<2x3xf32>
  %lsm = train.log_softmax_grad %sm0, %s {axis = -2 : i64} : tensor<2x3xf32>
  func.return %lsm : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @normalisations
func.func @normalisations(%dy: tensor<2x4x3x3xf32>, %x: tensor<2x4x3x3xf32>, %c: tensor<4xf32>, %s: tensor<3x3xf32>) -> (tensor<2x4x3x3xf32>, tensor<3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>) {
  // CHECK-NEXT: %ln = train.layer_norm_grad_input %dy, %x, %s {axis = -2 : i64, epsilon = 1.000000e-06 : f32} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<3x3xf32>) -> tensor<2x4x3x3xf32>
  %ln = train.layer_norm_grad_input %dy, %x, %s {axis = -2 : i64, epsilon = 1.000000e-06 : f32} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<3x3xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %lns = train.layer_norm_grad_scale %dy, %x {axis = -2 : i64} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) -> tensor<3x3xf32>
  %lns = train.layer_norm_grad_scale %dy, %x {axis = -2 : i64} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) -> tensor<3x3xf32>
  // CHECK-NEXT: %bn = train.batch_norm_grad_input %dy, %x, %c, %c, %c : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %bn = train.batch_norm_grad_input %dy, %x, %c, %c, %c : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %bns = train.batch_norm_grad_scale %dy, %x, %c, %c : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %bns = train.batch_norm_grad_scale %dy, %x, %c, %c : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // CHECK-NEXT: %bt = train.batch_norm_grad_input %dy, %x, %c, %c, %c {epsilon = 1.000000e-03 : f32, training} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %bt = train.batch_norm_grad_input %dy, %x, %c, %c, %c {epsilon = 1.000000e-03 : f32, training} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %bts = train.batch_norm_grad_scale %dy, %x, %c, %c {training} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %bts = train.batch_norm_grad_scale %dy, %x, %c, %c {training} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // CHECK-NEXT: %gn = train.group_norm_grad_input %dy, %x, %c {groups = 2 : i64} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %gn = train.group_norm_grad_input %dy, %x, %c {groups = 2 : i64} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %gns = train.group_norm_grad_scale %dy, %x {groups = 2 : i64, epsilon = 1.000000e-03 : f32} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) -> tensor<4xf32>
  %gns = train.group_norm_grad_scale %dy, %x {groups = 2 : i64, epsilon = 1.000000e-03 : f32} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) -> tensor<4xf32>
  func.return %ln, %lns, %bn, %bns, %bt, %bts, %gn, %gns : tensor<2x4x3x3xf32>, tensor<3x3xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<2x4x3x3xf32>, tensor<4xf32>
}

// CHECK-LABEL: func.func @linear
func.func @linear(%dy: tensor<2x7x3xf32>, %w: tensor<3x5xf32>, %x: tensor<2x7x5xf32>) -> (tensor<2x7x5xf32>, tensor<3x5xf32>) {
  // CHECK-NEXT: %dx = train.linear_grad_input %dy, %w : (tensor<2x7x3xf32>, tensor<3x5xf32>) -> tensor<2x7x5xf32>
  %dx = train.linear_grad_input %dy, %w : (tensor<2x7x3xf32>, tensor<3x5xf32>) -> tensor<2x7x5xf32>
  // CHECK-NEXT: %dw = train.linear_grad_weight %dy, %x : (tensor<2x7x3xf32>, tensor<2x7x5xf32>) -> tensor<3x5xf32>
  %dw = train.linear_grad_weight %dy, %x : (tensor<2x7x3xf32>, tensor<2x7x5xf32>) -> tensor<3x5xf32>
  func.return %dx, %dw : tensor<2x7x5xf32>, tensor<3x5xf32>
}

// CHECK-LABEL: func.func @convolutions
func.func @convolutions(%dy: tensor<2x4x3x3xf32>, %w: tensor<4x2x3x3xf32>, %x: tensor<2x2x6x6xf32>, %dyt: tensor<2x6x5x5xf32>, %tw: tensor<4x3x2x2xf32>, %xt: tensor<2x4x2x2xf32>) -> (tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>, tensor<2x4x2x2xf32>, tensor<4x3x2x2xf32>) {
  // CHECK-NEXT: %dx = train.conv2d_grad_input %dy, %w {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<4x2x3x3xf32>) -> tensor<2x2x6x6xf32>
  %dx = train.conv2d_grad_input %dy, %w {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<4x2x3x3xf32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %dw = train.conv2d_grad_weight %dy, %x {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<2x2x6x6xf32>) -> tensor<4x2x3x3xf32>
  %dw = train.conv2d_grad_weight %dy, %x {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<2x2x6x6xf32>) -> tensor<4x2x3x3xf32>
  // CHECK-NEXT: %dxt = train.conv_transpose2d_grad_input %dyt, %tw {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x6x5x5xf32>, tensor<4x3x2x2xf32>) -> tensor<2x4x2x2xf32>
  %dxt = train.conv_transpose2d_grad_input %dyt, %tw {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x6x5x5xf32>, tensor<4x3x2x2xf32>) -> tensor<2x4x2x2xf32>
  // CHECK-NEXT: %dwt = train.conv_transpose2d_grad_weight %dyt, %xt {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x6x5x5xf32>, tensor<2x4x2x2xf32>) -> tensor<4x3x2x2xf32>
  %dwt = train.conv_transpose2d_grad_weight %dyt, %xt {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x6x5x5xf32>, tensor<2x4x2x2xf32>) -> tensor<4x3x2x2xf32>
  func.return %dx, %dw, %dxt, %dwt : tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>, tensor<2x4x2x2xf32>, tensor<4x3x2x2xf32>
}

// The fused weight updates of fuse-weight-updates; the default chunk_rows (1) and
// weight_decay (0) are not printed.
// CHECK-LABEL: func.func @fused_updates
func.func @fused_updates(%dy: tensor<2x4x3x3xf32>, %w: tensor<4x2x3x3xf32>, %x: tensor<2x2x6x6xf32>, %ldy: tensor<2x7x3xf32>, %lx: tensor<2x7x5xf32>, %lw: tensor<3x5xf32>) -> (tensor<4x2x3x3xf32>, tensor<3x5xf32>) {
  // CHECK-NEXT: %cw = train.conv2d_grad_weight_sgd %dy, %x, %w {lr = 1.000000e-01 : f32, weight_decay = 1.000000e-02 : f32, chunk_rows = 3 : i64, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<4x2x3x3xf32>
  %cw = train.conv2d_grad_weight_sgd %dy, %x, %w {lr = 0.1 : f32, weight_decay = 0.01 : f32, chunk_rows = 3 : i64, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x4x3x3xf32>, tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<4x2x3x3xf32>
  // CHECK-NEXT: %lw2 = train.linear_grad_weight_sgd %ldy, %lx, %lw {lr = 5.000000e-01 : f32} : (tensor<2x7x3xf32>, tensor<2x7x5xf32>, tensor<3x5xf32>) -> tensor<3x5xf32>
  %lw2 = train.linear_grad_weight_sgd %ldy, %lx, %lw {lr = 0.5 : f32, chunk_rows = 1 : i64} : (tensor<2x7x3xf32>, tensor<2x7x5xf32>, tensor<3x5xf32>) -> tensor<3x5xf32>
  func.return %cw, %lw2 : tensor<4x2x3x3xf32>, tensor<3x5xf32>
}

// The default dilation [1, 1] is not printed.
// CHECK-LABEL: func.func @pooling
func.func @pooling(%x: tensor<1x2x7x7xf32>, %dy: tensor<1x2x3x3xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x7x7xf32>, tensor<1x2x7x7xf32>) {
  // CHECK-NEXT: %mp, %idx = train.max_pool2d_with_indices %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, ceil_mode} : tensor<1x2x7x7xf32> -> tensor<1x2x4x4xf32>, tensor<1x2x4x4xui8>
  %mp, %idx = train.max_pool2d_with_indices %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, dilation = array<i64: 1, 1>, ceil_mode} : tensor<1x2x7x7xf32> -> tensor<1x2x4x4xf32>, tensor<1x2x4x4xui8>
  // CHECK-NEXT: %dmp = train.max_pool2d_grad %mp, %idx {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, ceil_mode} : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xui8>) -> tensor<1x2x7x7xf32>
  %dmp = train.max_pool2d_grad %mp, %idx {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, ceil_mode} : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xui8>) -> tensor<1x2x7x7xf32>
  // CHECK-NEXT: %dap = train.avg_pool2d_grad %dy {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, count_include_pad} : tensor<1x2x3x3xf32> -> tensor<1x2x7x7xf32>
  %dap = train.avg_pool2d_grad %dy {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, count_include_pad} : tensor<1x2x3x3xf32> -> tensor<1x2x7x7xf32>
  func.return %mp, %dmp, %dap : tensor<1x2x4x4xf32>, tensor<1x2x7x7xf32>, tensor<1x2x7x7xf32>
}

// CHECK-LABEL: func.func @slice
func.func @slice(%dy: tensor<1x3x2xf32>, %i: tensor<1x3x2xi32>) -> (tensor<2x3x4xf32>, tensor<2x3x4xi32>) {
  // CHECK-NEXT: %dx = train.slice_grad %dy {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<1x3x2xf32> -> tensor<2x3x4xf32>
  %dx = train.slice_grad %dy {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<1x3x2xf32> -> tensor<2x3x4xf32>
  // CHECK-NEXT: %di = train.slice_grad %i {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<1x3x2xi32> -> tensor<2x3x4xi32>
  %di = train.slice_grad %i {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<1x3x2xi32> -> tensor<2x3x4xi32>
  func.return %dx, %di : tensor<2x3x4xf32>, tensor<2x3x4xi32>
}

// train.scatter: the slices at unique indices, in any order, replaced.
// CHECK-LABEL: func.func @scatter
func.func @scatter(%w: tensor<8x4xf32>, %rows: tensor<2x4xf32>, %i: tensor<3x5xi32>, %cols: tensor<3x1xi32>) -> (tensor<8x4xf32>, tensor<3x5xi32>) {
  // CHECK-NEXT: %w_new = train.scatter %w, %rows {axis = 0 : i64, indices = array<i64: 5, 1>} : tensor<8x4xf32>, tensor<2x4xf32>
  %w_new = train.scatter %w, %rows {axis = 0 : i64, indices = array<i64: 5, 1>} : tensor<8x4xf32>, tensor<2x4xf32>
  // CHECK-NEXT: %i_new = train.scatter %i, %cols {axis = -1 : i64, indices = array<i64: 4>} : tensor<3x5xi32>, tensor<3x1xi32>
  %i_new = train.scatter %i, %cols {axis = -1 : i64, indices = array<i64: 4>} : tensor<3x5xi32>, tensor<3x1xi32>
  func.return %w_new, %i_new : tensor<8x4xf32>, tensor<3x5xi32>
}

// CHECK-LABEL: func.func @optimizers
func.func @optimizers(%p: tensor<3xf32>, %g: tensor<3xf32>, %m: tensor<3xf32>, %v: tensor<3xf32>, %t: tensor<f32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) {
  // CHECK-NEXT: %sgd = train.sgd %p, %g {lr = 1.000000e-01 : f32} : tensor<3xf32>
  %sgd = train.sgd %p, %g {lr = 1.000000e-01 : f32} : tensor<3xf32>
  // CHECK-NEXT: %sgd_wd = train.sgd %p, %g {lr = 1.000000e-01 : f32, weight_decay = 5.000000e-04 : f32} : tensor<3xf32>
  %sgd_wd = train.sgd %p, %g {lr = 1.000000e-01 : f32, weight_decay = 5.000000e-04 : f32} : tensor<3xf32>
  // CHECK-NEXT: %np, %nb = train.sgd_momentum %p, %g, %m {lr = 1.000000e-01 : f32, momentum = 9.000000e-01 : f32} : tensor<3xf32>
  %np, %nb = train.sgd_momentum %p, %g, %m {lr = 1.000000e-01 : f32, momentum = 9.000000e-01 : f32} : tensor<3xf32>
  // CHECK-NEXT: %ap, %am, %av = train.adam %p, %g, %m, %v, %t {lr = 1.000000e-03 : f32, beta1 = 5.000000e-01 : f32, weight_decay = 1.000000e-02 : f32} : tensor<3xf32>, tensor<f32>
  %ap, %am, %av = train.adam %p, %g, %m, %v, %t {lr = 1.000000e-03 : f32, beta1 = 5.000000e-01 : f32, weight_decay = 1.000000e-02 : f32} : tensor<3xf32>, tensor<f32>
  func.return %sgd, %sgd_wd, %np, %nb, %ap, %am, %av : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>
}

// Defaults are not printed; the step counter stays f32 in a float64 model.
// CHECK-LABEL: func.func @adam_f64
func.func @adam_f64(%p: tensor<2x2xf64>, %g: tensor<2x2xf64>, %t: tensor<f32>) -> tensor<2x2xf64> {
  // CHECK-NEXT: %ap, %am, %av = train.adam %p, %g, %g, %g, %t {lr = 1.000000e-03 : f32} : tensor<2x2xf64>, tensor<f32>
  %ap, %am, %av = train.adam %p, %g, %g, %g, %t {lr = 1.000000e-03 : f32, beta1 = 9.000000e-01 : f32, beta2 = 9.990000e-01 : f32, epsilon = 1.000000e-08 : f32, weight_decay = 0.000000e+00 : f32} : tensor<2x2xf64>, tensor<f32>
  func.return %ap : tensor<2x2xf64>
}

// The gradients of the parametrised activations carry their forward op's parameters.
// CHECK-LABEL: func.func @activation_grads
func.func @activation_grads(%dy: tensor<2x3xf32>, %s: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK-NEXT: %clip = train.clip_grad %dy, %s {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32} : tensor<2x3xf32>
  %clip = train.clip_grad %dy, %s {min = 0.0 : f32, max = 6.0 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %lower = train.clip_grad %clip, %s {min = -1.000000e+00 : f32} : tensor<2x3xf32>
  %lower = train.clip_grad %clip, %s {min = -1.0 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %hsig = train.hardsigmoid_grad %lower, %s {alpha = 2.000000e-01 : f32} : tensor<2x3xf32>
  %hsig = train.hardsigmoid_grad %lower, %s {alpha = 0.2 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %elu = train.elu_grad %hsig, %s {alpha = 1.000000e+00 : f32} : tensor<2x3xf32>
  %elu = train.elu_grad %hsig, %s {alpha = 1.0 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %leaky = train.leaky_relu_grad %elu, %s {alpha = 1.000000e-02 : f32} : tensor<2x3xf32>
  %leaky = train.leaky_relu_grad %elu, %s {alpha = 0.01 : f32} : tensor<2x3xf32>
  func.return %leaky : tensor<2x3xf32>
}
