// insert-lora adds trainable low-rank adapters A, B to the weights of linear layers
// (nn.linear, and the right operand of nn.matmul) whose whole name matches `targets`, and
// freezes those weights: y = base(x) + (alpha/rank) * up(down(x, A), B). B starts at
// zero, so the model is unchanged; the adapters' layout avoids every transpose.

// RUN: edge-opt %s -p 'insert-lora{rank=2}' | filecheck %s
// RUN: edge-opt %s -p 'insert-lora{rank=2 alpha=2.0 targets="fc_weight"}' | filecheck %s --check-prefix=UNIT
// RUN: edge-opt %s -p 'insert-lora{rank=1 init=gaussian seed=3 targets="v|o"}' | filecheck %s --check-prefix=MATMUL

nn.param trainable @fc_weight : tensor<6x8xf32>
nn.param trainable @fc_bias : tensor<6xf32>
nn.param trainable @v : tensor<6x4xf32>
nn.param trainable @o : tensor<3x4xf32>

func.func @forward(%x: tensor<2x5x8xf32>) -> tensor<2x5x3xf32> {
  %w = nn.load @fc_weight : tensor<6x8xf32>
  %b = nn.load @fc_bias : tensor<6xf32>
  %h = nn.linear %x, %w, %b : (tensor<2x5x8xf32>, tensor<6x8xf32>, tensor<6xf32>) -> tensor<2x5x6xf32>
  %wv = nn.load @v : tensor<6x4xf32>
  %t = nn.matmul %h, %wv : (tensor<2x5x6xf32>, tensor<6x4xf32>) -> tensor<2x5x4xf32>
  %wo = nn.load @o : tensor<3x4xf32>
  %y = nn.matmul %t, %wo {transpose_rhs} : (tensor<2x5x4xf32>, tensor<3x4xf32>) -> tensor<2x5x3xf32>
  func.return %y : tensor<2x5x3xf32>
}

// Every weight of a linear layer by default (not the bias); A is (rank, in) and B
// (out, rank) for an (out, in) weight, as in PEFT; A random, B zero; the base frozen.
// CHECK:      nn.param @fc_weight : tensor<6x8xf32>
// CHECK-NEXT: nn.param trainable @fc_weight_lora_a : tensor<2x8xf32> = dense<{{.*}}> : tensor<2x8xf32> {lora.base = @fc_weight, lora.factor = "a", lora.rank = 2 : i64, lora.alpha = 8.000000e+00 : f64, lora.layout = "out_in"}
// CHECK-NEXT: nn.param trainable @fc_weight_lora_b : tensor<6x2xf32> = dense<0.000000e+00> : tensor<6x2xf32> {lora.base = @fc_weight, lora.factor = "b", lora.rank = 2 : i64, lora.alpha = 8.000000e+00 : f64, lora.layout = "out_in"}
// CHECK-NEXT: nn.param trainable @fc_bias : tensor<6xf32>
// x @ W with W (in, out): A (in, rank), B (rank, out).
// CHECK-NEXT: nn.param @v : tensor<6x4xf32>
// CHECK-NEXT: nn.param trainable @v_lora_a : tensor<6x2xf32> = dense<{{.*}}> {{.*}}lora.layout = "in_out"}
// CHECK-NEXT: nn.param trainable @v_lora_b : tensor<2x4xf32> = dense<0.000000e+00> {{.*}}lora.layout = "in_out"}
// CHECK-NEXT: nn.param @o : tensor<3x4xf32>
// CHECK-NEXT: nn.param trainable @o_lora_a : tensor<2x4xf32> = dense<{{.*}}> {{.*}}lora.layout = "out_in"}
// CHECK-NEXT: nn.param trainable @o_lora_b : tensor<3x2xf32> = dense<0.000000e+00> {{.*}}lora.layout = "out_in"}
// The scale alpha/rank = 4 multiplies the rank-wide intermediate; the sum takes the
// layer's name, so later uses read it.
// CHECK:      %h_base = nn.linear %x, %w, %b : (tensor<2x5x8xf32>, tensor<6x8xf32>, tensor<6xf32>) -> tensor<2x5x6xf32>
// CHECK-NEXT: %fc_weight_lora_a = nn.load @fc_weight_lora_a : tensor<2x8xf32>
// CHECK-NEXT: %h_lora_down = nn.linear %x, %fc_weight_lora_a : (tensor<2x5x8xf32>, tensor<2x8xf32>) -> tensor<2x5x2xf32>
// CHECK-NEXT: %h_lora_scale = nn.constant dense<4.000000e+00> : tensor<f32>
// CHECK-NEXT: %h_lora_scaled = nn.mul %h_lora_down, %h_lora_scale : (tensor<2x5x2xf32>, tensor<f32>) -> tensor<2x5x2xf32>
// CHECK-NEXT: %fc_weight_lora_b = nn.load @fc_weight_lora_b : tensor<6x2xf32>
// CHECK-NEXT: %h_lora_up = nn.linear %h_lora_scaled, %fc_weight_lora_b : (tensor<2x5x2xf32>, tensor<6x2xf32>) -> tensor<2x5x6xf32>
// CHECK-NEXT: %h = nn.add %h_base, %h_lora_up : (tensor<2x5x6xf32>, tensor<2x5x6xf32>) -> tensor<2x5x6xf32>
// CHECK-NEXT: %wv = nn.load @v : tensor<6x4xf32>
// CHECK-NEXT: %t_base = nn.matmul %h, %wv : (tensor<2x5x6xf32>, tensor<6x4xf32>) -> tensor<2x5x4xf32>
// CHECK-NEXT: %v_lora_a = nn.load @v_lora_a : tensor<6x2xf32>
// CHECK-NEXT: %t_lora_down = nn.matmul %h, %v_lora_a : (tensor<2x5x6xf32>, tensor<6x2xf32>) -> tensor<2x5x2xf32>
// CHECK:      %t_lora_up = nn.matmul %t_lora_scaled, %v_lora_b : (tensor<2x5x2xf32>, tensor<2x4xf32>) -> tensor<2x5x4xf32>
// CHECK-NEXT: %t = nn.add %t_base, %t_lora_up
// CHECK:      %y_base = nn.matmul %t, %wo {transpose_rhs} : (tensor<2x5x4xf32>, tensor<3x4xf32>) -> tensor<2x5x3xf32>
// CHECK:      %y_lora_down = nn.matmul %t, %o_lora_a {transpose_rhs} : (tensor<2x5x4xf32>, tensor<2x4xf32>) -> tensor<2x5x2xf32>
// CHECK:      %y_lora_up = nn.matmul %y_lora_scaled, %o_lora_b {transpose_rhs} : (tensor<2x5x2xf32>, tensor<3x2xf32>) -> tensor<2x5x3xf32>
// CHECK-NEXT: %y = nn.add %y_base, %y_lora_up
// CHECK-NEXT: func.return %y : tensor<2x5x3xf32>

// Only the targets; alpha = rank: no scaling op.
// UNIT:      nn.param @fc_weight : tensor<6x8xf32>
// UNIT-NEXT: nn.param trainable @fc_weight_lora_a
// UNIT-NEXT: nn.param trainable @fc_weight_lora_b
// UNIT-NEXT: nn.param trainable @fc_bias : tensor<6xf32>
// UNIT-NEXT: nn.param trainable @v : tensor<6x4xf32>
// UNIT-NEXT: nn.param trainable @o : tensor<3x4xf32>
// UNIT:      %h_lora_down = nn.linear %x, %fc_weight_lora_a
// UNIT-NEXT: %fc_weight_lora_b = nn.load @fc_weight_lora_b : tensor<6x2xf32>
// UNIT-NEXT: %h_lora_up = nn.linear %h_lora_down, %fc_weight_lora_b
// UNIT-NEXT: %h = nn.add %h_base, %h_lora_up
// UNIT-NOT:  lora
// UNIT:      func.return %y

// MATMUL:     nn.param trainable @fc_weight : tensor<6x8xf32>
// MATMUL:     nn.param trainable @v_lora_a : tensor<6x1xf32>
// MATMUL:     nn.param trainable @o_lora_b : tensor<3x1xf32>
// MATMUL:     %t_lora_scale = nn.constant dense<8.000000e+00> : tensor<f32>
