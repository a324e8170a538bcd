// Every nn op prints in its custom form and parses back; the generic form round-trips too.
// RUN: edge-opt %s | filecheck %s
// RUN: edge-opt %s | edge-opt | filecheck %s
// RUN: edge-opt %s --print-op-generic | edge-opt | filecheck %s

// CHECK:      nn.param trainable @w : tensor<4x2x3x3xf32>
// CHECK-NEXT: nn.param @s : tensor<2xf32> = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
nn.param trainable @w : tensor<4x2x3x3xf32>
nn.param @s : tensor<2xf32> = dense<[1.0, 2.0]> : tensor<2xf32>

// CHECK-LABEL: func.func @ops
func.func @ops(%x: tensor<2x2x6x6xf32>, %v: tensor<2x5xf32>, %m: tensor<3x5x4xf32>) -> tensor<2x4x3x3xf32> {
  // CHECK:      %w = nn.load @w : tensor<4x2x3x3xf32>
  %w = nn.load @w : tensor<4x2x3x3xf32>
  // CHECK-NEXT: %s = nn.load @s : tensor<2xf32>
  %s = nn.load @s : tensor<2xf32>
  // CHECK-NEXT: %c = nn.constant dense<5.000000e-01> : tensor<f32>
  %c = nn.constant dense<0.5> : tensor<f32>
  // CHECK-NEXT: %relu = nn.relu %x : tensor<2x2x6x6xf32>
  %relu = nn.relu %x : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %sig = nn.sigmoid %relu : tensor<2x2x6x6xf32>
  %sig = nn.sigmoid %relu : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %tanh = nn.tanh %sig : tensor<2x2x6x6xf32>
  %tanh = nn.tanh %sig : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %silu = nn.silu %tanh : tensor<2x2x6x6xf32>
  %silu = nn.silu %tanh : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %hs = nn.hardswish %silu : tensor<2x2x6x6xf32>
  %hs = nn.hardswish %silu : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %erf = nn.erf %hs : tensor<2x2x6x6xf32>
  %erf = nn.erf %hs : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %exp = nn.exp %erf : tensor<2x2x6x6xf32>
  %exp = nn.exp %erf : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %sqrt = nn.sqrt %exp : tensor<2x2x6x6xf32>
  %sqrt = nn.sqrt %exp : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %log = nn.log %sqrt : tensor<2x2x6x6xf32>
  %log = nn.log %sqrt : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %neg = nn.neg %log : tensor<2x2x6x6xf32>
  %neg = nn.neg %log : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %gelu = nn.gelu %neg : tensor<2x2x6x6xf32>
  %gelu = nn.gelu %neg : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %gelu_t = nn.gelu %gelu {approximate = "tanh"} : tensor<2x2x6x6xf32>
  %gelu_t = nn.gelu %gelu {approximate = "tanh"} : tensor<2x2x6x6xf32>
  // CHECK-NEXT: %add = nn.add %gelu_t, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  %add = nn.add %gelu_t, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %sub = nn.sub %add, %x : (tensor<2x2x6x6xf32>, tensor<2x2x6x6xf32>) -> tensor<2x2x6x6xf32>
  %sub = nn.sub %add, %x : (tensor<2x2x6x6xf32>, tensor<2x2x6x6xf32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %mul = nn.mul %sub, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  %mul = nn.mul %sub, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %div = nn.div %mul, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  %div = nn.div %mul, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %pow = nn.pow %exp, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  %pow = nn.pow %exp, %c : (tensor<2x2x6x6xf32>, tensor<f32>) -> tensor<2x2x6x6xf32>
  // CHECK-NEXT: %conv = nn.conv2d %div, %w {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<2x4x3x3xf32>
  %conv = nn.conv2d %div, %w {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 0, 0>} : (tensor<2x2x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<2x4x3x3xf32>
  func.return %conv : tensor<2x4x3x3xf32>
}

// CHECK-LABEL: func.func @convolutions
func.func @convolutions(%x: tensor<2x2x6x6xf32>, %dw: tensor<4x1x3x3xf32>, %tw: tensor<4x3x2x2xf32>, %b: tensor<6xf32>) -> (tensor<2x4x2x2xf32>, tensor<2x6x5x5xf32>) {
  // CHECK-NEXT: %g = nn.conv2d %x, %dw {groups = 2 : i64, dilation = array<i64: 2, 2>} : (tensor<2x2x6x6xf32>, tensor<4x1x3x3xf32>) -> tensor<2x4x2x2xf32>
  %g = nn.conv2d %x, %dw {groups = 2 : i64, dilation = array<i64: 2, 2>} : (tensor<2x2x6x6xf32>, tensor<4x1x3x3xf32>) -> tensor<2x4x2x2xf32>
  // CHECK-NEXT: %t = nn.conv_transpose2d %g, %tw, %b {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x4x2x2xf32>, tensor<4x3x2x2xf32>, tensor<6xf32>) -> tensor<2x6x5x5xf32>
  %t = nn.conv_transpose2d %g, %tw, %b {stride = array<i64: 3, 3>, padding = array<i64: 0, 0, 1, 1>, output_padding = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x4x2x2xf32>, tensor<4x3x2x2xf32>, tensor<6xf32>) -> tensor<2x6x5x5xf32>
  func.return %g, %t : tensor<2x4x2x2xf32>, tensor<2x6x5x5xf32>
}

// CHECK-LABEL: func.func @linear_algebra
func.func @linear_algebra(%v: tensor<2x5xf32>, %w: tensor<3x5xf32>, %b: tensor<3xf32>, %a: tensor<4x2x5xf32>, %m: tensor<5x2xf32>) -> (tensor<2x3xf32>, tensor<4x5x5xf32>) {
  // CHECK-NEXT: %l = nn.linear %v, %w, %b : (tensor<2x5xf32>, tensor<3x5xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %l = nn.linear %v, %w, %b : (tensor<2x5xf32>, tensor<3x5xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  // CHECK-NEXT: %n = nn.linear %v, %w : (tensor<2x5xf32>, tensor<3x5xf32>) -> tensor<2x3xf32>
  %n = nn.linear %v, %w : (tensor<2x5xf32>, tensor<3x5xf32>) -> tensor<2x3xf32>
  // CHECK-NEXT: %mm = nn.matmul %a, %m {transpose_lhs, transpose_rhs} : (tensor<4x2x5xf32>, tensor<5x2xf32>) -> tensor<4x5x5xf32>
  %mm = nn.matmul %a, %m {transpose_lhs, transpose_rhs} : (tensor<4x2x5xf32>, tensor<5x2xf32>) -> tensor<4x5x5xf32>
  func.return %l, %mm : tensor<2x3xf32>, tensor<4x5x5xf32>
}

// CHECK-LABEL: func.func @normalisations
func.func @normalisations(%x: tensor<2x4x3x3xf32>, %c: tensor<4xf32>, %s: tensor<3x3xf32>) -> (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) {
  // CHECK-NEXT: %ln = nn.layer_norm %x, %s, %s {axis = -2 : i64, epsilon = 1.000000e-06 : f32} : (tensor<2x4x3x3xf32>, tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<2x4x3x3xf32>
  %ln = nn.layer_norm %x, %s, %s {axis = -2 : i64, epsilon = 1.0e-6 : f32} : (tensor<2x4x3x3xf32>, tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %bn = nn.batch_norm %x, %c, %c, %c, %c : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %bn = nn.batch_norm %x, %c, %c, %c, %c : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %bt = nn.batch_norm %x, %c, %c, %c, %c {training} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %bt = nn.batch_norm %x, %c, %c, %c, %c {training} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %gn = nn.group_norm %x, %c, %c {groups = 2 : i64} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  %gn = nn.group_norm %x, %c, %c {groups = 2 : i64} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  // CHECK-NEXT: %sm = nn.softmax %x {axis = 1 : i64} : tensor<2x4x3x3xf32>
  %sm = nn.softmax %x {axis = 1 : i64} : tensor<2x4x3x3xf32>
  // CHECK-NEXT: %lsm = nn.log_softmax %x : tensor<2x4x3x3xf32>
  %lsm = nn.log_softmax %x : tensor<2x4x3x3xf32>
  func.return %ln, %bn, %bt, %gn, %sm, %lsm : tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>
}

// CHECK-LABEL: func.func @pooling
func.func @pooling(%x: tensor<1x2x7x7xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x3x3xf32>, tensor<1x2x1x1xf32>) {
  // CHECK-NEXT: %mp = nn.max_pool2d %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, ceil_mode} : tensor<1x2x7x7xf32> -> tensor<1x2x4x4xf32>
  %mp = nn.max_pool2d %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>, ceil_mode} : tensor<1x2x7x7xf32> -> tensor<1x2x4x4xf32>
  // CHECK-NEXT: %ap = nn.avg_pool2d %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, count_include_pad} : tensor<1x2x7x7xf32> -> tensor<1x2x3x3xf32>
  %ap = nn.avg_pool2d %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, count_include_pad} : tensor<1x2x7x7xf32> -> tensor<1x2x3x3xf32>
  // CHECK-NEXT: %gap = nn.global_avg_pool %x : tensor<1x2x7x7xf32> -> tensor<1x2x1x1xf32>
  %gap = nn.global_avg_pool %x : tensor<1x2x7x7xf32> -> tensor<1x2x1x1xf32>
  func.return %mp, %ap, %gap : tensor<1x2x4x4xf32>, tensor<1x2x3x3xf32>, tensor<1x2x1x1xf32>
}

// CHECK-LABEL: func.func @shapes
func.func @shapes(%x: tensor<2x3x4xf32>, %i: tensor<2x3xi32>) -> (tensor<6x4xf32>, tensor<4x2x3xf32>, tensor<2x6x4xf32>, tensor<1x2x2xf32>, tensor<2x1x3x4xf32>, tensor<3x4xf32>, tensor<2x1x4xf32>, tensor<2xf32>, tensor<3x2xi32>) {
  // CHECK-NEXT: %r = nn.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
  %r = nn.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
  // CHECK-NEXT: %t = nn.transpose %x {perm = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
  %t = nn.transpose %x {perm = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
  // CHECK-NEXT: %c = nn.concat %x, %x {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x6x4xf32>
  %c = nn.concat %x, %x {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x6x4xf32>
  // CHECK-NEXT: %s = nn.slice %x {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<2x3x4xf32> -> tensor<1x3x2xf32>
  %s = nn.slice %x {starts = array<i64: 1, 2, 0>, ends = array<i64: 2, -1, 4>, steps = array<i64: 1, -1, 2>} : tensor<2x3x4xf32> -> tensor<1x3x2xf32>
  %s2 = nn.slice %s {starts = array<i64: 0, 0, 0>, ends = array<i64: 1, 2, 2>, steps = array<i64: 1, 1, 1>} : tensor<1x3x2xf32> -> tensor<1x2x2xf32>
  // CHECK:      %u = nn.unsqueeze %x {axes = array<i64: 1>} : tensor<2x3x4xf32> -> tensor<2x1x3x4xf32>
  %u = nn.unsqueeze %x {axes = array<i64: 1>} : tensor<2x3x4xf32> -> tensor<2x1x3x4xf32>
  %one = nn.slice %x {starts = array<i64: 0, 0, 0>, ends = array<i64: 1, 3, 4>, steps = array<i64: 1, 1, 1>} : tensor<2x3x4xf32> -> tensor<1x3x4xf32>
  // CHECK:      %sq = nn.squeeze %one {axes = array<i64: 0>} : tensor<1x3x4xf32> -> tensor<3x4xf32>
  %sq = nn.squeeze %one {axes = array<i64: 0>} : tensor<1x3x4xf32> -> tensor<3x4xf32>
  // CHECK-NEXT: %rm = nn.reduce_mean %x {axes = array<i64: 1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x4xf32>
  %rm = nn.reduce_mean %x {axes = array<i64: 1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x4xf32>
  // CHECK-NEXT: %rs = nn.reduce_sum %x {axes = array<i64: 1, 2>} : tensor<2x3x4xf32> -> tensor<2xf32>
  %rs = nn.reduce_sum %x {axes = array<i64: 1, 2>} : tensor<2x3x4xf32> -> tensor<2xf32>
  // CHECK-NEXT: %it = nn.transpose %i {perm = array<i64: 1, 0>} : tensor<2x3xi32> -> tensor<3x2xi32>
  %it = nn.transpose %i {perm = array<i64: 1, 0>} : tensor<2x3xi32> -> tensor<3x2xi32>
  func.return %r, %t, %c, %s2, %u, %sq, %rm, %rs, %it : tensor<6x4xf32>, tensor<4x2x3xf32>, tensor<2x6x4xf32>, tensor<1x2x2xf32>, tensor<2x1x3x4xf32>, tensor<3x4xf32>, tensor<2x1x4xf32>, tensor<2xf32>, tensor<3x2xi32>
}

// nn.gather: indices in any order, repeats allowed; any element type.
// CHECK-LABEL: func.func @gather
func.func @gather(%x: tensor<2x3x4xf32>, %i: tensor<2x3xi32>) -> (tensor<2x3x3xf32>, tensor<2x3xi32>) {
  // CHECK-NEXT: %g = nn.gather %x {axis = -1 : i64, indices = array<i64: 3, 0, 3>} : tensor<2x3x4xf32> -> tensor<2x3x3xf32>
  %g = nn.gather %x {axis = -1 : i64, indices = array<i64: 3, 0, 3>} : tensor<2x3x4xf32> -> tensor<2x3x3xf32>
  // CHECK-NEXT: %gi = nn.gather %i {axis = 0 : i64, indices = array<i64: 1, 0>} : tensor<2x3xi32> -> tensor<2x3xi32>
  %gi = nn.gather %i {axis = 0 : i64, indices = array<i64: 1, 0>} : tensor<2x3xi32> -> tensor<2x3xi32>
  func.return %g, %gi : tensor<2x3x3xf32>, tensor<2x3xi32>
}

// CHECK-LABEL: func.func @broadcast
func.func @broadcast(%x: tensor<3x1xf32>) -> tensor<2x3x4xf32> {
  // CHECK-NEXT: %b = nn.broadcast_to %x : tensor<3x1xf32> -> tensor<2x3x4xf32>
  %b = nn.broadcast_to %x : tensor<3x1xf32> -> tensor<2x3x4xf32>
  func.return %b : tensor<2x3x4xf32>
}

// nn.attention: without biases, and with all four (x (B, S, D), wq/wk (D, H*dk),
// wv (D, H*dv), wo (H*dv, E); dk and dv may differ).
// CHECK-LABEL: func.func @attention
func.func @attention(%x: tensor<2x3x4xf32>, %wq: tensor<4x4xf32>, %wv: tensor<4x6xf32>, %wo: tensor<6x5xf32>, %b4: tensor<4xf32>, %b6: tensor<6xf32>, %b5: tensor<5xf32>) -> (tensor<2x3x5xf32>, tensor<2x3x5xf32>) {
  // CHECK-NEXT: %a = nn.attention %x, %wq, %wq, %wv, %wo {heads = 2 : i64, scale = 0.707106769 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>) -> tensor<2x3x5xf32>
  %a = nn.attention %x, %wq, %wq, %wv, %wo {heads = 2 : i64, scale = 0.70710678 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>) -> tensor<2x3x5xf32>
  // CHECK-NEXT: %ab = nn.attention %x, %wq, %wq, %wv, %wo bias(%b4, %b4, %b6, %b5) {heads = 2 : i64, scale = 5.000000e-01 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<6xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
  %ab = nn.attention %x, %wq, %wq, %wv, %wo bias(%b4, %b4, %b6, %b5) {heads = 2 : i64, scale = 0.5 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<6xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
  func.return %a, %ab : tensor<2x3x5xf32>, tensor<2x3x5xf32>
}

// Parameters print only where they differ from the default; an absent clip bound is
// absent.
// CHECK-LABEL: func.func @activations
func.func @activations(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK-NEXT: %relu6 = nn.clip %x {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32} : tensor<2x3xf32>
  %relu6 = nn.clip %x {min = 0.0 : f32, max = 6.0 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %upper = nn.clip %relu6 {max = 1.000000e+00 : f32} : tensor<2x3xf32>
  %upper = nn.clip %relu6 {max = 1.0 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %hsig = nn.hardsigmoid %upper : tensor<2x3xf32>
  %hsig = nn.hardsigmoid %upper : tensor<2x3xf32>
  // CHECK-NEXT: %hsig_onnx = nn.hardsigmoid %hsig {alpha = 2.000000e-01 : f32} : tensor<2x3xf32>
  %hsig_onnx = nn.hardsigmoid %hsig {alpha = 0.2 : f32, beta = 0.5 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %elu = nn.elu %hsig_onnx {alpha = 5.000000e-01 : f32} : tensor<2x3xf32>
  %elu = nn.elu %hsig_onnx {alpha = 0.5 : f32} : tensor<2x3xf32>
  // CHECK-NEXT: %leaky = nn.leaky_relu %elu : tensor<2x3xf32>
  %leaky = nn.leaky_relu %elu : tensor<2x3xf32>
  // CHECK-NEXT: %ceil = nn.ceil %leaky : tensor<2x3xf32>
  %ceil = nn.ceil %leaky : tensor<2x3xf32>
  // CHECK-NEXT: %floor = nn.floor %ceil : tensor<2x3xf32>
  %floor = nn.floor %ceil : tensor<2x3xf32>
  // CHECK-NEXT: %round = nn.round %floor : tensor<2x3xf32>
  %round = nn.round %floor : tensor<2x3xf32>
  func.return %round : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @pad
func.func @pad(%x: tensor<1x2x3x3xf32>) -> (tensor<1x2x6x4xf32>, tensor<1x2x3x3xf32>) {
  // CHECK-NEXT: %p = nn.pad %x {pads = array<i64: 0, 0, 1, 0, 0, 0, 2, 1>} : tensor<1x2x3x3xf32> -> tensor<1x2x6x4xf32>
  %p = nn.pad %x {pads = array<i64: 0, 0, 1, 0, 0, 0, 2, 1>} : tensor<1x2x3x3xf32> -> tensor<1x2x6x4xf32>
  // CHECK-NEXT: %q = nn.pad %x {pads = array<i64: 0, 0, 0, 0, 0, 0, 0, 0>, value = -1.500000e+00 : f32} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
  %q = nn.pad %x {pads = array<i64: 0, 0, 0, 0, 0, 0, 0, 0>, value = -1.5 : f32} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
  func.return %p, %q : tensor<1x2x6x4xf32>, tensor<1x2x3x3xf32>
}
