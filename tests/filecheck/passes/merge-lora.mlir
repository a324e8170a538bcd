// merge-lora folds LoRA adapters into their base weights (W + (alpha/rank)·ΔW, with
// ΔW = B·A for an (out, in) weight and A·B for an (in, out) one) and removes the adapter
// ops and parameters; rank, alpha and layout come from the adapters' lora.* attributes.
// A training step that trains the adapters goes too, with its optimizer state.

// RUN: edge-opt %s -p merge-lora | filecheck %s
// RUN: edge-opt %s -p 'autodiff{momentum=0.9},merge-lora' | filecheck %s --check-prefix=TRAINED
// RUN: edge-opt %s -p 'merge-lora,merge-lora' | filecheck %s

nn.param @fc_weight : tensor<2x3xf32> = dense<1.000000e+00> : tensor<2x3xf32>
nn.param trainable @fc_weight_lora_a : tensor<1x3xf32> = dense<[[1.0, 2.0, 3.0]]> : tensor<1x3xf32> {lora.base = @fc_weight, lora.factor = "a", lora.rank = 1 : i64, lora.alpha = 2.000000e+00 : f64, lora.layout = "out_in"}
nn.param trainable @fc_weight_lora_b : tensor<2x1xf32> = dense<[[1.0], [-1.0]]> : tensor<2x1xf32> {lora.base = @fc_weight, lora.factor = "b", lora.rank = 1 : i64, lora.alpha = 2.000000e+00 : f64, lora.layout = "out_in"}
nn.param @fc_bias : tensor<2xf32> = dense<5.000000e-01> : tensor<2xf32>
nn.param @v : tensor<2x2xf32> = dense<[[1.0, 0.0], [0.0, 1.0]]> : tensor<2x2xf32>
nn.param trainable @v_lora_a : tensor<2x1xf32> = dense<[[1.0], [2.0]]> : tensor<2x1xf32> {lora.base = @v, lora.factor = "a", lora.rank = 1 : i64, lora.alpha = 1.000000e+00 : f64, lora.layout = "in_out"}
nn.param trainable @v_lora_b : tensor<1x2xf32> = dense<[[3.0, 4.0]]> : tensor<1x2xf32> {lora.base = @v, lora.factor = "b", lora.rank = 1 : i64, lora.alpha = 1.000000e+00 : f64, lora.layout = "in_out"}

func.func @forward(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
  %w = nn.load @fc_weight : tensor<2x3xf32>
  %b = nn.load @fc_bias : tensor<2xf32>
  %h_base = nn.linear %x, %w, %b : (tensor<4x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<4x2xf32>
  %fc_weight_lora_a = nn.load @fc_weight_lora_a : tensor<1x3xf32>
  %h_lora_down = nn.linear %x, %fc_weight_lora_a : (tensor<4x3xf32>, tensor<1x3xf32>) -> tensor<4x1xf32>
  %h_lora_scale = nn.constant dense<2.000000e+00> : tensor<f32>
  %h_lora_scaled = nn.mul %h_lora_down, %h_lora_scale : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
  %fc_weight_lora_b = nn.load @fc_weight_lora_b : tensor<2x1xf32>
  %h_lora_up = nn.linear %h_lora_scaled, %fc_weight_lora_b : (tensor<4x1xf32>, tensor<2x1xf32>) -> tensor<4x2xf32>
  %h = nn.add %h_base, %h_lora_up : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  %r = nn.relu %h : tensor<4x2xf32>
  %wv = nn.load @v : tensor<2x2xf32>
  %y_base = nn.matmul %r, %wv : (tensor<4x2xf32>, tensor<2x2xf32>) -> tensor<4x2xf32>
  %v_lora_a = nn.load @v_lora_a : tensor<2x1xf32>
  %y_lora_down = nn.matmul %r, %v_lora_a : (tensor<4x2xf32>, tensor<2x1xf32>) -> tensor<4x1xf32>
  %v_lora_b = nn.load @v_lora_b : tensor<1x2xf32>
  %y_lora_up = nn.matmul %y_lora_down, %v_lora_b : (tensor<4x1xf32>, tensor<1x2xf32>) -> tensor<4x2xf32>
  %y = nn.add %y_base, %y_lora_up : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  func.return %y : tensor<4x2xf32>
}

// W + 2·B·A = 1 + 2·[[1, 2, 3], [-1, -2, -3]]; V + A·B = I + [[3, 4], [6, 8]].
// CHECK:      nn.param @fc_weight : tensor<2x3xf32> = dense<{{\[}}[3.000000e+00, 5.000000e+00, 7.000000e+00], [-1.000000e+00, -3.000000e+00, -5.000000e+00]]> : tensor<2x3xf32>
// CHECK-NEXT: nn.param @fc_bias : tensor<2xf32> = dense<5.000000e-01> : tensor<2xf32>
// CHECK-NEXT: nn.param @v : tensor<2x2xf32> = dense<{{\[}}[4.000000e+00, 4.000000e+00], [6.000000e+00, 9.000000e+00]]> : tensor<2x2xf32>
// CHECK-NEXT: func.func @forward(%x: tensor<4x3xf32>) -> tensor<4x2xf32> {
// CHECK-NEXT:   %w = nn.load @fc_weight : tensor<2x3xf32>
// CHECK-NEXT:   %b = nn.load @fc_bias : tensor<2xf32>
// CHECK-NEXT:   %h = nn.linear %x, %w, %b : (tensor<4x3xf32>, tensor<2x3xf32>, tensor<2xf32>) -> tensor<4x2xf32>
// CHECK-NEXT:   %r = nn.relu %h : tensor<4x2xf32>
// CHECK-NEXT:   %wv = nn.load @v : tensor<2x2xf32>
// CHECK-NEXT:   %y = nn.matmul %r, %wv : (tensor<4x2xf32>, tensor<2x2xf32>) -> tensor<4x2xf32>
// CHECK-NEXT:   func.return %y : tensor<4x2xf32>
// CHECK-NEXT: }
// CHECK-NEXT: }

// TRAINED-NOT: lora
// TRAINED-NOT: momentum
// TRAINED-NOT: @train_step
// TRAINED:     func.func @forward
// TRAINED-NOT: lora
// TRAINED-NOT: @train_step
