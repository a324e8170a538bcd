// tile-attention-depth-first sets block_rows on nn.attention; lower-attention (and
// bufferize) then compute the attention one head and one block of query rows at a
// time on column slices of the projections, and the autodiff rule recomputes each
// block's scores in the backward: no value holds more than one (rows, S) block.

// RUN: edge-opt %s -p 'tile-attention-depth-first{rows=2}' | filecheck %s --check-prefix=TILE
// RUN: edge-opt %s -p 'tile-attention-depth-first{rows=2},lower-attention' | filecheck %s
// RUN: edge-opt %s -p 'tile-attention-depth-first{rows=2},autodiff{loss=mse},canonicalize,cse,dce' | filecheck %s --check-prefix=GRAD
// RUN: edge-opt %s -p 'tile-attention-depth-first{rows=4}' | filecheck %s --check-prefix=WHOLE

// TILE:      nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 5.000000e-01 : f32, block_rows = 2 : i64}

// 3 tokens, 2 heads, rows 2: blocks of rows [0, 2) and [2, 3) per head. The heads of
// k and v are sliced before q exists.
// CHECK-LABEL: func.func @forward(
// CHECK:         %y_k = nn.matmul %x, %wk : (tensor<1x3x4xf32>, tensor<4x4xf32>) -> tensor<1x3x4xf32>
// CHECK-NEXT:    %y_v = nn.matmul %x, %wv
// CHECK-NEXT:    %y_h0_k = nn.slice %y_k {{.*}} -> tensor<1x3x2xf32>
// CHECK-NEXT:    %y_h1_k = nn.slice %y_k
// CHECK-NEXT:    %y_h0_v = nn.slice %y_v
// CHECK-NEXT:    %y_h1_v = nn.slice %y_v
// CHECK-NEXT:    %y_q = nn.matmul %x, %wq
// CHECK-NEXT:    %y_h0_r0_q = nn.slice %y_q {{.*}} -> tensor<1x2x2xf32>
// CHECK-NEXT:    %y_h0_r0_scores = nn.matmul %y_h0_r0_q, %y_h0_k {transpose_rhs} : (tensor<1x2x2xf32>, tensor<1x3x2xf32>) -> tensor<1x2x3xf32>
// CHECK-NEXT:    %y_scale = nn.constant dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT:    %y_h0_r0_scaled = nn.mul %y_h0_r0_scores, %y_scale
// CHECK-NEXT:    %y_h0_r0_probs = nn.softmax %y_h0_r0_scaled : tensor<1x2x3xf32>
// CHECK-NEXT:    %y_h0_r0_o = nn.matmul %y_h0_r0_probs, %y_h0_v : (tensor<1x2x3xf32>, tensor<1x3x2xf32>) -> tensor<1x2x2xf32>
// CHECK-NEXT:    %y_h0_r2_q = nn.slice %y_q {{.*}} -> tensor<1x1x2xf32>
// CHECK:         %y_h0_r2_probs = nn.softmax %y_h0_r2_scaled : tensor<1x1x3xf32>
// CHECK-NEXT:    %y_h0_r2_o = nn.matmul
// CHECK-NEXT:    %y_h0_o = nn.concat %y_h0_r0_o, %y_h0_r2_o {axis = 1 : i64} : (tensor<1x2x2xf32>, tensor<1x1x2xf32>) -> tensor<1x3x2xf32>
// CHECK:         %y_h1_r2_o = nn.matmul
// CHECK-NEXT:    %y_h1_o = nn.concat %y_h1_r0_o, %y_h1_r2_o {axis = 1 : i64}
// CHECK-NEXT:    %y_o = nn.concat %y_h0_o, %y_h1_o {axis = 2 : i64} : (tensor<1x3x2xf32>, tensor<1x3x2xf32>) -> tensor<1x3x4xf32>
// CHECK-NEXT:    %y = nn.matmul %y_o, %wo
// CHECK-NOT:     nn.softmax {{.*}} tensor<1x2x3x3xf32>

// The training step keeps nn.attention in the forward; the backward recomputes each
// block (softmax and softmax_grad of (1, rows, 3) only) and sums d_k, d_v over blocks.
// GRAD-LABEL: func.func @train_step(
// GRAD:         nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 5.000000e-01 : f32, block_rows = 2 : i64}
// GRAD:         train.mse
// GRAD-NOT:     tensor<1x2x3x3xf32>
// GRAD:         %y_h0_r0_probs = nn.softmax {{.*}} : tensor<1x2x3xf32>
// GRAD:         train.softmax_grad {{.*}} tensor<1x2x3xf32>
// GRAD:         %y_h0_r2_probs = nn.softmax {{.*}} : tensor<1x1x3xf32>
// GRAD:         train.softmax_grad {{.*}} tensor<1x1x3xf32>
// GRAD:         nn.add
// GRAD:         %y_h1_r0_probs = nn.softmax
// GRAD-NOT:     tensor<1x2x3x3xf32>
// GRAD:         func.return

// One head and rows >= tokens: nothing to split, left alone.
// WHOLE-LABEL: func.func @one_head(
// WHOLE:         nn.attention %x, %w, %w, %w, %w {heads = 1 : i64, scale = 5.000000e-01 : f32}

nn.param trainable @wq : tensor<4x4xf32> = dense<0.1> : tensor<4x4xf32>
nn.param trainable @wk : tensor<4x4xf32> = dense<0.2> : tensor<4x4xf32>
nn.param trainable @wv : tensor<4x4xf32> = dense<0.3> : tensor<4x4xf32>
nn.param trainable @wo : tensor<4x4xf32> = dense<0.4> : tensor<4x4xf32>
func.func @forward(%x: tensor<1x3x4xf32>) -> tensor<1x3x4xf32> {
  %wq = nn.load @wq : tensor<4x4xf32>
  %wk = nn.load @wk : tensor<4x4xf32>
  %wv = nn.load @wv : tensor<4x4xf32>
  %wo = nn.load @wo : tensor<4x4xf32>
  %y = nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 0.5 : f32} : (tensor<1x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<1x3x4xf32>
  func.return %y : tensor<1x3x4xf32>
}

func.func @one_head(%x: tensor<1x4x2xf32>, %w: tensor<2x2xf32>) -> tensor<1x4x2xf32> {
  %a = nn.attention %x, %w, %w, %w, %w {heads = 1 : i64, scale = 0.5 : f32} : (tensor<1x4x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<1x4x2xf32>
  func.return %a : tensor<1x4x2xf32>
}
