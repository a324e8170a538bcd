// raise-attention recognises the multi-head self-attention that ONNX exporters write
// (projections, a head split of shape ops, q @ k^T, a scale, softmax, @ v, a head merge,
// the output projection) and raises it to one nn.attention with explicit heads and
// weights. The weights stay what they were (parameters stay parameters); a fused qkv
// projection is split by gathers of its columns, a weight in nn.linear's (out, in)
// layout gets a transpose. Near misses (here, a causal mask) stay as they are.

// RUN: edge-opt %s -p raise-attention | filecheck %s

// CCT (Deeploy's CCT2 block, 2 heads of 4): k split straight into k^T, the scale
// multiplies the scores, no q/k/v biases, so the output bias stays an add after the op.
nn.param trainable @wq : tensor<8x8xf32>
nn.param trainable @wk : tensor<8x8xf32>
nn.param trainable @wv : tensor<8x8xf32>
nn.param trainable @wo : tensor<8x8xf32>
nn.param trainable @bo : tensor<8xf32>

// CHECK-LABEL: func.func @cct(%x: tensor<1x6x8xf32>) -> tensor<1x6x8xf32> {
// CHECK-NEXT:    %wk = nn.load @wk : tensor<8x8xf32>
// CHECK-NEXT:    %wq = nn.load @wq : tensor<8x8xf32>
// CHECK-NEXT:    %wv = nn.load @wv : tensor<8x8xf32>
// CHECK-NEXT:    %wo = nn.load @wo : tensor<8x8xf32>
// CHECK-NEXT:    %proj = nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 5.000000e-01 : f32} : (tensor<1x6x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
// CHECK-NEXT:    %bo = nn.load @bo : tensor<8xf32>
// CHECK-NEXT:    %y = nn.add %bo, %proj : (tensor<8xf32>, tensor<1x6x8xf32>) -> tensor<1x6x8xf32>
// CHECK-NEXT:    func.return %y : tensor<1x6x8xf32>
// CHECK-NEXT:  }
func.func @cct(%x: tensor<1x6x8xf32>) -> tensor<1x6x8xf32> {
  %wk = nn.load @wk : tensor<8x8xf32>
  %k = nn.matmul %x, %wk : (tensor<1x6x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
  %k4 = nn.reshape %k : tensor<1x6x8xf32> -> tensor<1x6x2x4xf32>
  %kt = nn.transpose %k4 {perm = array<i64: 0, 2, 3, 1>} : tensor<1x6x2x4xf32> -> tensor<1x2x4x6xf32>
  %wq = nn.load @wq : tensor<8x8xf32>
  %q = nn.matmul %x, %wq : (tensor<1x6x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
  %q4 = nn.reshape %q : tensor<1x6x8xf32> -> tensor<1x6x2x4xf32>
  %qh = nn.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x6x2x4xf32> -> tensor<1x2x6x4xf32>
  %s = nn.matmul %qh, %kt : (tensor<1x2x6x4xf32>, tensor<1x2x4x6xf32>) -> tensor<1x2x6x6xf32>
  %c = nn.constant dense<0.5> : tensor<f32>
  %ss = nn.mul %s, %c : (tensor<1x2x6x6xf32>, tensor<f32>) -> tensor<1x2x6x6xf32>
  %a = nn.softmax %ss {axis = 3 : i64} : tensor<1x2x6x6xf32>
  %wv = nn.load @wv : tensor<8x8xf32>
  %v = nn.matmul %x, %wv : (tensor<1x6x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
  %v4 = nn.reshape %v : tensor<1x6x8xf32> -> tensor<1x6x2x4xf32>
  %vh = nn.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x6x2x4xf32> -> tensor<1x2x6x4xf32>
  %o = nn.matmul %a, %vh : (tensor<1x2x6x6xf32>, tensor<1x2x6x4xf32>) -> tensor<1x2x6x4xf32>
  %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x6x4xf32> -> tensor<1x6x2x4xf32>
  %om = nn.reshape %ot : tensor<1x6x2x4xf32> -> tensor<1x6x8xf32>
  %wo = nn.load @wo : tensor<8x8xf32>
  %proj = nn.matmul %om, %wo : (tensor<1x6x8xf32>, tensor<8x8xf32>) -> tensor<1x6x8xf32>
  %bo = nn.load @bo : tensor<8xf32>
  %y = nn.add %bo, %proj : (tensor<8xf32>, tensor<1x6x8xf32>) -> tensor<1x6x8xf32>
  func.return %y : tensor<1x6x8xf32>
}

// TinyViT: one fused qkv projection with a bias, reshaped to (B, S, H, 3d) and sliced
// per head; a constant-folded zero attention bias; scale 1. Column h*3d + j of the
// fused weight is element j of head h's q: the op reads (strided) slices of those
// columns (a gather where they are not evenly spaced).
// CHECK-LABEL: func.func @tinyvit(%x: tensor<3x2x4xf32>, %w: tensor<4x12xf32>, %b: tensor<12xf32>, %wo: tensor<4x4xf32>, %bo: tensor<4xf32>) -> tensor<3x2x4xf32> {
// CHECK-NEXT:    %y_wq = nn.slice %w {starts = array<i64: 0, 0>, ends = array<i64: 4, 10>, steps = array<i64: 1, 3>} : tensor<4x12xf32> -> tensor<4x4xf32>
// CHECK-NEXT:    %y_wk = nn.slice %w {starts = array<i64: 0, 1>, ends = array<i64: 4, 11>, steps = array<i64: 1, 3>} : tensor<4x12xf32> -> tensor<4x4xf32>
// CHECK-NEXT:    %y_wv = nn.slice %w {starts = array<i64: 0, 2>, ends = array<i64: 4, 12>, steps = array<i64: 1, 3>} : tensor<4x12xf32> -> tensor<4x4xf32>
// CHECK-NEXT:    %y_bq = nn.slice %b {starts = array<i64: 0>, ends = array<i64: 10>, steps = array<i64: 3>} : tensor<12xf32> -> tensor<4xf32>
// CHECK-NEXT:    %y_bk = nn.slice %b {starts = array<i64: 1>, ends = array<i64: 11>, steps = array<i64: 3>} : tensor<12xf32> -> tensor<4xf32>
// CHECK-NEXT:    %y_bv = nn.slice %b {starts = array<i64: 2>, ends = array<i64: 12>, steps = array<i64: 3>} : tensor<12xf32> -> tensor<4xf32>
// CHECK-NEXT:    %y = nn.attention %x, %y_wq, %y_wk, %y_wv, %wo bias(%y_bq, %y_bk, %y_bv, %bo) {heads = 4 : i64, scale = 1.000000e+00 : f32} : (tensor<3x2x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<3x2x4xf32>
// CHECK-NEXT:    func.return %y : tensor<3x2x4xf32>
// CHECK-NEXT:  }
func.func @tinyvit(%x: tensor<3x2x4xf32>, %w: tensor<4x12xf32>, %b: tensor<12xf32>, %wo: tensor<4x4xf32>, %bo: tensor<4xf32>) -> tensor<3x2x4xf32> {
  %p = nn.matmul %x, %w : (tensor<3x2x4xf32>, tensor<4x12xf32>) -> tensor<3x2x12xf32>
  %pb = nn.add %b, %p : (tensor<12xf32>, tensor<3x2x12xf32>) -> tensor<3x2x12xf32>
  %r = nn.reshape %pb : tensor<3x2x12xf32> -> tensor<3x2x4x3xf32>
  %q = nn.slice %r {starts = array<i64: 0, 0, 0, 0>, ends = array<i64: 3, 2, 4, 1>, steps = array<i64: 1, 1, 1, 1>} : tensor<3x2x4x3xf32> -> tensor<3x2x4x1xf32>
  %k = nn.slice %r {starts = array<i64: 0, 0, 0, 1>, ends = array<i64: 3, 2, 4, 2>, steps = array<i64: 1, 1, 1, 1>} : tensor<3x2x4x3xf32> -> tensor<3x2x4x1xf32>
  %v = nn.slice %r {starts = array<i64: 0, 0, 0, 2>, ends = array<i64: 3, 2, 4, 3>, steps = array<i64: 1, 1, 1, 1>} : tensor<3x2x4x3xf32> -> tensor<3x2x4x1xf32>
  %qh = nn.transpose %q {perm = array<i64: 0, 2, 1, 3>} : tensor<3x2x4x1xf32> -> tensor<3x4x2x1xf32>
  %vh = nn.transpose %v {perm = array<i64: 0, 2, 1, 3>} : tensor<3x2x4x1xf32> -> tensor<3x4x2x1xf32>
  %kt = nn.transpose %k {perm = array<i64: 0, 2, 3, 1>} : tensor<3x2x4x1xf32> -> tensor<3x4x1x2xf32>
  %s = nn.matmul %qh, %kt : (tensor<3x4x2x1xf32>, tensor<3x4x1x2xf32>) -> tensor<3x4x2x2xf32>
  %one = nn.constant dense<1.0> : tensor<f32>
  %ss = nn.mul %s, %one : (tensor<3x4x2x2xf32>, tensor<f32>) -> tensor<3x4x2x2xf32>
  %zero = nn.constant dense<0.0> : tensor<4x1x1xf32>
  %sb = nn.add %ss, %zero : (tensor<3x4x2x2xf32>, tensor<4x1x1xf32>) -> tensor<3x4x2x2xf32>
  %a = nn.softmax %sb {axis = 3 : i64} : tensor<3x4x2x2xf32>
  %o = nn.matmul %a, %vh : (tensor<3x4x2x2xf32>, tensor<3x4x2x1xf32>) -> tensor<3x4x2x1xf32>
  %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<3x4x2x1xf32> -> tensor<3x2x4x1xf32>
  %om = nn.reshape %ot : tensor<3x2x4x1xf32> -> tensor<3x2x4xf32>
  %proj = nn.matmul %om, %wo : (tensor<3x2x4xf32>, tensor<4x4xf32>) -> tensor<3x2x4xf32>
  %y = nn.add %bo, %proj : (tensor<4xf32>, tensor<3x2x4xf32>) -> tensor<3x2x4xf32>
  func.return %y : tensor<3x2x4xf32>
}

// nn.linear projections ((out, in) weights: transposed for the op), biases on q and v
// only (zeros for k), the scale a division of q by sqrt(dk), k transposed by the
// matmul.
// CHECK-LABEL: func.func @linear(
// CHECK-NEXT:    %y_wq = nn.transpose %wq {perm = array<i64: 1, 0>} : tensor<4x6xf32> -> tensor<6x4xf32>
// CHECK-NEXT:    %y_wk = nn.transpose %wk {perm = array<i64: 1, 0>} : tensor<4x6xf32> -> tensor<6x4xf32>
// CHECK-NEXT:    %y_wv = nn.transpose %wv {perm = array<i64: 1, 0>} : tensor<4x6xf32> -> tensor<6x4xf32>
// CHECK-NEXT:    %y_wo = nn.transpose %wo {perm = array<i64: 1, 0>} : tensor<6x4xf32> -> tensor<4x6xf32>
// CHECK-NEXT:    %y_bk = nn.constant dense<0.000000e+00> : tensor<4xf32>
// CHECK-NEXT:    %y = nn.attention %x, %y_wq, %y_wk, %y_wv, %y_wo bias(%bq, %y_bk, %bv, %bo) {heads = 2 : i64, scale = 0.707106769 : f32}
// CHECK-NEXT:    func.return %y : tensor<2x3x6xf32>
// CHECK-NEXT:  }
func.func @linear(%x: tensor<2x3x6xf32>, %wq: tensor<4x6xf32>, %wk: tensor<4x6xf32>, %wv: tensor<4x6xf32>, %wo: tensor<6x4xf32>, %bq: tensor<4xf32>, %bv: tensor<4xf32>, %bo: tensor<6xf32>) -> tensor<2x3x6xf32> {
  %q = nn.linear %x, %wq, %bq : (tensor<2x3x6xf32>, tensor<4x6xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %k = nn.linear %x, %wk : (tensor<2x3x6xf32>, tensor<4x6xf32>) -> tensor<2x3x4xf32>
  %v = nn.linear %x, %wv, %bv : (tensor<2x3x6xf32>, tensor<4x6xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %q4 = nn.reshape %q : tensor<2x3x4xf32> -> tensor<2x3x2x2xf32>
  %k4 = nn.reshape %k : tensor<2x3x4xf32> -> tensor<2x3x2x2xf32>
  %v4 = nn.reshape %v : tensor<2x3x4xf32> -> tensor<2x3x2x2xf32>
  %qh = nn.transpose %q4 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x2xf32> -> tensor<2x2x3x2xf32>
  %kh = nn.transpose %k4 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x2xf32> -> tensor<2x2x3x2xf32>
  %vh = nn.transpose %v4 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x2xf32> -> tensor<2x2x3x2xf32>
  %sqrt = nn.constant dense<1.41421356> : tensor<f32>
  %qs = nn.div %qh, %sqrt : (tensor<2x2x3x2xf32>, tensor<f32>) -> tensor<2x2x3x2xf32>
  %s = nn.matmul %qs, %kh {transpose_rhs} : (tensor<2x2x3x2xf32>, tensor<2x2x3x2xf32>) -> tensor<2x2x3x3xf32>
  %a = nn.softmax %s : tensor<2x2x3x3xf32>
  %o = nn.matmul %a, %vh : (tensor<2x2x3x3xf32>, tensor<2x2x3x2xf32>) -> tensor<2x2x3x2xf32>
  %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<2x2x3x2xf32> -> tensor<2x3x2x2xf32>
  %om = nn.reshape %ot : tensor<2x3x2x2xf32> -> tensor<2x3x4xf32>
  %y = nn.linear %om, %wo, %bo : (tensor<2x3x4xf32>, tensor<6x4xf32>, tensor<6xf32>) -> tensor<2x3x6xf32>
  func.return %y : tensor<2x3x6xf32>
}

// A causal mask added to the scores is not self-attention as nn.attention computes it.
// CHECK-LABEL: func.func @masked
// CHECK-NOT:     nn.attention
// CHECK:         nn.softmax
// CHECK:         func.return
func.func @masked(%x: tensor<1x2x2xf32>, %w: tensor<2x2xf32>) -> tensor<1x2x2xf32> {
  %q = nn.matmul %x, %w : (tensor<1x2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2xf32>
  %k = nn.matmul %x, %w : (tensor<1x2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2xf32>
  %v = nn.matmul %x, %w : (tensor<1x2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2xf32>
  %s = nn.matmul %q, %k {transpose_rhs} : (tensor<1x2x2xf32>, tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %mask = nn.constant dense<[[0.0, -1.0e9], [0.0, 0.0]]> : tensor<2x2xf32>
  %sm = nn.add %s, %mask : (tensor<1x2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2xf32>
  %a = nn.softmax %sm : tensor<1x2x2xf32>
  %o = nn.matmul %a, %v : (tensor<1x2x2xf32>, tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
  %y = nn.matmul %o, %w : (tensor<1x2x2xf32>, tensor<2x2xf32>) -> tensor<1x2x2xf32>
  func.return %y : tensor<1x2x2xf32>
}
