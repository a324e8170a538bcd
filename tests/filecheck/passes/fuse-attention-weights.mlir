// fuse-attention-weights precomputes, per head, M = scale·Wq·Wkᵀ (D×D) and N = Wv·Wo
// (D×E) for an nn.attention whose projections are frozen parameters, where the cost
// formula says it pays: scores = (X·M + u)·Xᵀ (u = scale·Wk·bq; bk drops out of the
// softmax), y = Σ_h a_h·(X·N_h) + bo' (bo' = bo + bv·Wo). Each side (QK, VO) is decided
// on its own; the fused form is primitive nn ops (broadcast batched matmuls over the
// heads, a sum over the heads). Trainable projections are never fused.
//
// @one_head (H = 1, dk = dv = D = E): both sides pay in MACs and params, under every
// objective. @trainable: left alone. @two_heads (H = 2, dk = 3, dv = 1, S = 16): QK has
// fewer params (32 < 48) but more MACs, VO more of both, so only objective=params fuses
// its QK side (and writes VO as lower-attention does).

// RUN: edge-opt %s -p fuse-attention-weights 2>/dev/null | filecheck %s
// RUN: edge-opt %s -p "fuse-attention-weights{objective=macs}" 2>/dev/null | filecheck %s --check-prefix=MACS
// RUN: edge-opt %s -p "fuse-attention-weights{objective=params}" 2>/dev/null | filecheck %s --check-prefix=PARAMS
// RUN: edge-opt %s -p fuse-attention-weights 2>&1 >/dev/null | filecheck %s --check-prefix=LOG
// RUN: not edge-opt %s -p "fuse-attention-weights{objective=fastest}" 2>&1 | filecheck %s --check-prefix=BAD

nn.param @wq : tensor<4x4xf32> = dense<[[0.5, -0.25, 0.0, 0.25], [0.0, 0.5, 0.25, 0.0], [0.25, 0.0, -0.5, 0.0], [0.0, 0.25, 0.0, 0.5]]> : tensor<4x4xf32>
nn.param @wk : tensor<4x4xf32> = dense<[[0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5]]> : tensor<4x4xf32>
nn.param @wv : tensor<4x4xf32> = dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]> : tensor<4x4xf32>
nn.param @wo : tensor<4x4xf32> = dense<[[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 0.0, 0.5]]> : tensor<4x4xf32>
nn.param @bq : tensor<4xf32> = dense<[1.0, 0.0, -1.0, 0.5]> : tensor<4xf32>
nn.param @bk : tensor<4xf32> = dense<[0.5, 0.5, 0.5, 0.5]> : tensor<4xf32>
nn.param @bv : tensor<4xf32> = dense<[0.0, 1.0, 0.0, -1.0]> : tensor<4xf32>
nn.param @bo : tensor<4xf32> = dense<[0.25, 0.25, -0.25, -0.25]> : tensor<4xf32>


// The decisions, one dictionary per op and side, on the module:
// CHECK:       builtin.module attributes {edge_opt.attention_fusion = [{op = "y", function = "one_head", part = "qk", objective = "both", macs_unfused = 264 : i64, macs_fused = 168 : i64, params_unfused = 40 : i64, params_fused = 20 : i64, fused = true, reason = "fewer MACs, fewer params"}, {op = "y", function = "one_head", part = "vo", {{.*}}, fused = true, {{.*}}}, {op = "z", function = "trainable", part = "qk", {{.*}}, fused = false, reason = "wq @t_wq is trainable"}, {{.*}}, {op = "u", function = "two_heads", part = "qk", objective = "both", macs_unfused = 2304 : i64, macs_fused = 2560 : i64, params_unfused = 48 : i64, params_fused = 32 : i64, fused = false, reason = "more MACs, fewer params"}, {{.*}}]} {
// CHECK-NEXT:    nn.param @wq__qk_fused : tensor<1x4x4xf32> = dense<{{.*}}> : tensor<1x4x4xf32>
// CHECK-NEXT:    nn.param @wv__vo_fused : tensor<1x4x4xf32> = dense<{{.*}}> : tensor<1x4x4xf32>
// CHECK-NEXT:    nn.param @bq__qk_fused : tensor<1x1x4xf32> = dense<[{{\[}}[2.500000e-01, 0.000000e+00, -2.500000e-01, 1.250000e-01]]]> : tensor<1x1x4xf32>
// CHECK-NEXT:    nn.param @bo__vo_fused : tensor<4xf32> = dense<[-2.500000e-01, 7.500000e-01, 2.500000e-01, -7.500000e-01]> : tensor<4xf32>
// CHECK-NEXT:    func.func @one_head(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
// CHECK-NEXT:      %y_x_heads = nn.reshape %x : tensor<2x3x4xf32> -> tensor<2x1x3x4xf32>
// CHECK-NEXT:      %wq__qk_fused = nn.load @wq__qk_fused : tensor<1x4x4xf32>
// CHECK-NEXT:      %y_qm = nn.matmul %y_x_heads, %wq__qk_fused : (tensor<2x1x3x4xf32>, tensor<1x4x4xf32>) -> tensor<2x1x3x4xf32>
// CHECK-NEXT:      %bq__qk_fused = nn.load @bq__qk_fused : tensor<1x1x4xf32>
// CHECK-NEXT:      %y_q = nn.add %y_qm, %bq__qk_fused : (tensor<2x1x3x4xf32>, tensor<1x1x4xf32>) -> tensor<2x1x3x4xf32>
// CHECK-NEXT:      %y_scores = nn.matmul %y_q, %y_x_heads {transpose_rhs} : (tensor<2x1x3x4xf32>, tensor<2x1x3x4xf32>) -> tensor<2x1x3x3xf32>
// CHECK-NEXT:      %y_probs = nn.softmax %y_scores : tensor<2x1x3x3xf32>
// CHECK-NEXT:      %wv__vo_fused = nn.load @wv__vo_fused : tensor<1x4x4xf32>
// CHECK-NEXT:      %y_xv = nn.matmul %y_x_heads, %wv__vo_fused : (tensor<2x1x3x4xf32>, tensor<1x4x4xf32>) -> tensor<2x1x3x4xf32>
// CHECK-NEXT:      %y_oh = nn.matmul %y_probs, %y_xv : (tensor<2x1x3x3xf32>, tensor<2x1x3x4xf32>) -> tensor<2x1x3x4xf32>
// CHECK-NEXT:      %y_out_proj = nn.reshape %y_oh : tensor<2x1x3x4xf32> -> tensor<2x3x4xf32>
// CHECK-NEXT:      %bo__vo_fused = nn.load @bo__vo_fused : tensor<4xf32>
// CHECK-NEXT:      %y = nn.add %y_out_proj, %bo__vo_fused : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:      func.return %y : tensor<2x3x4xf32>
// CHECK-NEXT:    }

// MACS:        nn.param @wq__qk_fused
// MACS:        func.func @one_head
// MACS-NOT:    nn.attention
// MACS:        func.func @trainable
// MACS:        %z = nn.attention
// MACS:        nn.param @p_wq : tensor<4x6xf32>
// MACS:        func.func @two_heads
// MACS:        %u = nn.attention

// PARAMS:      func.func @one_head
// PARAMS-NOT:  nn.attention
// PARAMS:      %y = nn.add %y_out_proj, %bo__vo_fused
func.func @one_head(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %wq = nn.load @wq : tensor<4x4xf32>
  %wk = nn.load @wk : tensor<4x4xf32>
  %wv = nn.load @wv : tensor<4x4xf32>
  %wo = nn.load @wo : tensor<4x4xf32>
  %bq = nn.load @bq : tensor<4xf32>
  %bk = nn.load @bk : tensor<4xf32>
  %bv = nn.load @bv : tensor<4xf32>
  %bo = nn.load @bo : tensor<4xf32>
  %y = nn.attention %x, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv, %bo) {heads = 1 : i64, scale = 5.000000e-01 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  func.return %y : tensor<2x3x4xf32>
}

nn.param trainable @t_wq : tensor<4x4xf32> = dense<0.5> : tensor<4x4xf32>
nn.param trainable @t_wk : tensor<4x4xf32> = dense<0.5> : tensor<4x4xf32>
nn.param trainable @t_wv : tensor<4x4xf32> = dense<0.5> : tensor<4x4xf32>
nn.param trainable @t_wo : tensor<4x4xf32> = dense<0.5> : tensor<4x4xf32>

func.func @trainable(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %wq = nn.load @t_wq : tensor<4x4xf32>
  %wk = nn.load @t_wk : tensor<4x4xf32>
  %wv = nn.load @t_wv : tensor<4x4xf32>
  %wo = nn.load @t_wo : tensor<4x4xf32>
  %z = nn.attention %x, %wq, %wk, %wv, %wo {heads = 1 : i64, scale = 5.000000e-01 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<2x3x4xf32>
  func.return %z : tensor<2x3x4xf32>

// CHECK:         nn.param trainable @t_wq : tensor<4x4xf32> = dense<5.000000e-01> : tensor<4x4xf32>
// CHECK:         func.func @trainable(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
// CHECK-NEXT:      %wq = nn.load @t_wq : tensor<4x4xf32>
// CHECK-NEXT:      %wk = nn.load @t_wk : tensor<4x4xf32>
// CHECK-NEXT:      %wv = nn.load @t_wv : tensor<4x4xf32>
// CHECK-NEXT:      %wo = nn.load @t_wo : tensor<4x4xf32>
// CHECK-NEXT:      %z = nn.attention %x, %wq, %wk, %wv, %wo {heads = 1 : i64, scale = 5.000000e-01 : f32}
// CHECK-NEXT:      func.return %z : tensor<2x3x4xf32>

// PARAMS:      func.func @trainable
// PARAMS:      %z = nn.attention
}

nn.param @p_wq : tensor<4x6xf32> = dense<0.25> : tensor<4x6xf32>
nn.param @p_wk : tensor<4x6xf32> = dense<0.5> : tensor<4x6xf32>
nn.param @p_wv : tensor<4x2xf32> = dense<1.0> : tensor<4x2xf32>
nn.param @p_wo : tensor<2x4xf32> = dense<0.5> : tensor<2x4xf32>

func.func @two_heads(%x: tensor<1x16x4xf32>) -> tensor<1x16x4xf32> {
  %wq = nn.load @p_wq : tensor<4x6xf32>
  %wk = nn.load @p_wk : tensor<4x6xf32>
  %wv = nn.load @p_wv : tensor<4x2xf32>
  %wo = nn.load @p_wo : tensor<2x4xf32>
  %u = nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 5.000000e-01 : f32} : (tensor<1x16x4xf32>, tensor<4x6xf32>, tensor<4x6xf32>, tensor<4x2xf32>, tensor<2x4xf32>) -> tensor<1x16x4xf32>
  func.return %u : tensor<1x16x4xf32>
}

// CHECK:         nn.param @p_wq : tensor<4x6xf32>
// CHECK:         func.func @two_heads
// CHECK:           %u = nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 5.000000e-01 : f32}

// objective=params: QK fused over two heads (x as (B, 1, S, D) against M (H, D, D), the
// batch dims broadcast), VO as lower-attention writes it; @p_wq and @p_wk are gone.
// PARAMS-NOT:    @p_wq :
// PARAMS-NOT:    @p_wk :
// PARAMS:        nn.param @p_wq__qk_fused : tensor<2x4x4xf32> = dense<1.875000e-01> : tensor<2x4x4xf32>
// PARAMS-NEXT:   nn.param @p_wv : tensor<4x2xf32>
// PARAMS-NEXT:   nn.param @p_wo : tensor<2x4xf32>
// PARAMS-NEXT:   func.func @two_heads(%x: tensor<1x16x4xf32>) -> tensor<1x16x4xf32> {
// PARAMS-NEXT:     %wv = nn.load @p_wv : tensor<4x2xf32>
// PARAMS-NEXT:     %wo = nn.load @p_wo : tensor<2x4xf32>
// PARAMS-NEXT:     %u_x_heads = nn.reshape %x : tensor<1x16x4xf32> -> tensor<1x1x16x4xf32>
// PARAMS-NEXT:     %p_wq__qk_fused = nn.load @p_wq__qk_fused : tensor<2x4x4xf32>
// PARAMS-NEXT:     %u_q = nn.matmul %u_x_heads, %p_wq__qk_fused : (tensor<1x1x16x4xf32>, tensor<2x4x4xf32>) -> tensor<1x2x16x4xf32>
// PARAMS-NEXT:     %u_scores = nn.matmul %u_q, %u_x_heads {transpose_rhs} : (tensor<1x2x16x4xf32>, tensor<1x1x16x4xf32>) -> tensor<1x2x16x16xf32>
// PARAMS-NEXT:     %u_probs = nn.softmax %u_scores : tensor<1x2x16x16xf32>
// PARAMS-NEXT:     %u_v = nn.matmul %x, %wv : (tensor<1x16x4xf32>, tensor<4x2xf32>) -> tensor<1x16x2xf32>
// PARAMS-NEXT:     %u_vh_split = nn.reshape %u_v : tensor<1x16x2xf32> -> tensor<1x16x2x1xf32>
// PARAMS-NEXT:     %u_vh = nn.transpose %u_vh_split {perm = array<i64: 0, 2, 1, 3>} : tensor<1x16x2x1xf32> -> tensor<1x2x16x1xf32>
// PARAMS-NEXT:     %u_oh = nn.matmul %u_probs, %u_vh : (tensor<1x2x16x16xf32>, tensor<1x2x16x1xf32>) -> tensor<1x2x16x1xf32>
// PARAMS-NEXT:     %u_o_t = nn.transpose %u_oh {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x16x1xf32> -> tensor<1x16x2x1xf32>
// PARAMS-NEXT:     %u_o = nn.reshape %u_o_t : tensor<1x16x2x1xf32> -> tensor<1x16x2xf32>
// PARAMS-NEXT:     %u = nn.matmul %u_o, %wo : (tensor<1x16x2xf32>, tensor<2x4xf32>) -> tensor<1x16x4xf32>
// PARAMS-NEXT:     func.return %u : tensor<1x16x4xf32>

// LOG:      fuse-attention-weights: %y in @one_head (B=2 S=3 D=4 H=1 dk=4 dv=4 E=4, objective both): QK MACs 264 -> 168, params 40 -> 20: fused (fewer MACs, fewer params); VO MACs 264 -> 168, params 40 -> 20: fused (fewer MACs, fewer params)
// LOG-NEXT: fuse-attention-weights: %z in @trainable ({{.*}}): QK {{.*}}: kept (wq @t_wq is trainable); VO {{.*}}: kept (wv @t_wv is trainable)
// LOG-NEXT: fuse-attention-weights: %u in @two_heads (B=1 S=16 D=4 H=2 dk=3 dv=1 E=4, objective both): QK MACs 2,304 -> 2,560, params 48 -> 32: kept (more MACs, fewer params); VO MACs 768 -> 2,560, params 16 -> 32: kept (more MACs, more params)

// BAD: fuse-attention-weights{objective=fastest}
// BAD-SAME: expected typing.Literal['both', 'macs', 'params']
