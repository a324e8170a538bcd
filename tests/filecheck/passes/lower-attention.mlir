// lower-attention rewrites nn.attention into the primitive ops of its definition, in
// its order: the projections (+ biases), the head split (reshape, transpose), q @ k^T,
// the scale, softmax over the keys, @ v, the head merge and the output projection.
// bufferize refuses nn.attention (the buffer level has no attention kernel): the
// lowering stage (lower-to-buffers) runs lower-attention first.

// RUN: edge-opt %s -p lower-attention | filecheck %s
// RUN: edge-opt %s -p lower-attention,bufferize | filecheck %s --check-prefix=BUF
// RUN: not edge-opt %s -p bufferize 2>&1 | filecheck %s --check-prefix=REFUSED
// REFUSED: edge-opt: error: pass failed: bufferize: nn.attention %y has no kernel; run lower-attention first

// CHECK-LABEL: func.func @attention(%x: tensor<2x3x4xf32>, %wq: tensor<4x4xf32>, %wk: tensor<4x4xf32>, %wv: tensor<4x6xf32>, %wo: tensor<6x5xf32>, %bq: tensor<4xf32>, %bk: tensor<4xf32>, %bv: tensor<6xf32>, %bo: tensor<5xf32>) -> tensor<2x3x5xf32> {
// CHECK-NEXT:    %y_q_proj = nn.matmul %x, %wq : (tensor<2x3x4xf32>, tensor<4x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    %y_q = nn.add %y_q_proj, %bq : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    %y_qh_split = nn.reshape %y_q : tensor<2x3x4xf32> -> tensor<2x3x2x2xf32>
// CHECK-NEXT:    %y_qh = nn.transpose %y_qh_split {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x2xf32> -> tensor<2x2x3x2xf32>
// CHECK-NEXT:    %y_k_proj = nn.matmul %x, %wk : (tensor<2x3x4xf32>, tensor<4x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    %y_k = nn.add %y_k_proj, %bk : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    %y_kh_split = nn.reshape %y_k : tensor<2x3x4xf32> -> tensor<2x3x2x2xf32>
// CHECK-NEXT:    %y_kh = nn.transpose %y_kh_split {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x2xf32> -> tensor<2x2x3x2xf32>
// CHECK-NEXT:    %y_v_proj = nn.matmul %x, %wv : (tensor<2x3x4xf32>, tensor<4x6xf32>) -> tensor<2x3x6xf32>
// CHECK-NEXT:    %y_v = nn.add %y_v_proj, %bv : (tensor<2x3x6xf32>, tensor<6xf32>) -> tensor<2x3x6xf32>
// CHECK-NEXT:    %y_vh_split = nn.reshape %y_v : tensor<2x3x6xf32> -> tensor<2x3x2x3xf32>
// CHECK-NEXT:    %y_vh = nn.transpose %y_vh_split {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x3xf32> -> tensor<2x2x3x3xf32>
// CHECK-NEXT:    %y_scores = nn.matmul %y_qh, %y_kh {transpose_rhs} : (tensor<2x2x3x2xf32>, tensor<2x2x3x2xf32>) -> tensor<2x2x3x3xf32>
// CHECK-NEXT:    %y_scale = nn.constant dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT:    %y_scaled = nn.mul %y_scores, %y_scale : (tensor<2x2x3x3xf32>, tensor<f32>) -> tensor<2x2x3x3xf32>
// CHECK-NEXT:    %y_probs = nn.softmax %y_scaled : tensor<2x2x3x3xf32>
// CHECK-NEXT:    %y_oh = nn.matmul %y_probs, %y_vh : (tensor<2x2x3x3xf32>, tensor<2x2x3x3xf32>) -> tensor<2x2x3x3xf32>
// CHECK-NEXT:    %y_o_t = nn.transpose %y_oh {perm = array<i64: 0, 2, 1, 3>} : tensor<2x2x3x3xf32> -> tensor<2x3x2x3xf32>
// CHECK-NEXT:    %y_o = nn.reshape %y_o_t : tensor<2x3x2x3xf32> -> tensor<2x3x6xf32>
// CHECK-NEXT:    %y_out_proj = nn.matmul %y_o, %wo : (tensor<2x3x6xf32>, tensor<6x5xf32>) -> tensor<2x3x5xf32>
// CHECK-NEXT:    %y = nn.add %y_out_proj, %bo : (tensor<2x3x5xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
// CHECK-NEXT:    func.return %y : tensor<2x3x5xf32>
// CHECK-NEXT:  }

// BUF-LABEL: func.func @attention(
// BUF-NOT:     nn.attention
// BUF:         kernel.matmul ins(%x, %wq
// BUF:         kernel.softmax
// BUF:         func.return
func.func @attention(%x: tensor<2x3x4xf32>, %wq: tensor<4x4xf32>, %wk: tensor<4x4xf32>, %wv: tensor<4x6xf32>, %wo: tensor<6x5xf32>, %bq: tensor<4xf32>, %bk: tensor<4xf32>, %bv: tensor<6xf32>, %bo: tensor<5xf32>) -> tensor<2x3x5xf32> {
  %y = nn.attention %x, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv, %bo) {heads = 2 : i64, scale = 0.5 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<6xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
  func.return %y : tensor<2x3x5xf32>
}

// Without biases, as CCT's attention: the projections are plain matmuls.
// CHECK-LABEL: func.func @plain(
// CHECK:         %a_q = nn.matmul %x, %w
// CHECK-NEXT:    %a_qh_split = nn.reshape %a_q
// CHECK:         %a_o = nn.reshape
// CHECK-NEXT:    %a = nn.matmul %a_o, %w
// CHECK-NEXT:    func.return %a
func.func @plain(%x: tensor<1x4x2xf32>, %w: tensor<2x2xf32>) -> tensor<1x4x2xf32> {
  %a = nn.attention %x, %w, %w, %w, %w {heads = 1 : i64, scale = 0.707106769 : f32} : (tensor<1x4x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<1x4x2xf32>
  func.return %a : tensor<1x4x2xf32>
}
