// train-lora on the example CNN: freeze every parameter but those matching `trainable`,
// insert-lora adds adapters to the matching linear-layer weights (frozen), then autodiff
// builds @train_step, which trains the adapters (and `trainable`) only.

// RUN: edge-opt %examples/tiny_cnn.mlir -p 'train-lora{rank=2 targets="fc_weight"}' | filecheck %s
// RUN: edge-opt %examples/tiny_cnn.mlir --pipeline 'train-lora{rank=2 alpha=2.0 targets="fc_weight" trainable="conv2_.*" optimizer=adam}' | filecheck %s --check-prefix=MIX
// RUN: edge-opt %examples/tiny_cnn.mlir -p 'train-lora{rank=2 targets="fc_weight"}' --print-ir-after-all 2>&1 | filecheck %s --check-prefix=STAGES
// RUN: not edge-opt %examples/tiny_cnn.mlir -p 'train-lora{targets="conv1_weight"}' 2>&1 | filecheck %s --check-prefix=CONV

// Only the adapters train; every other parameter is frozen.
// CHECK:      nn.param @conv1_weight
// CHECK:      nn.param @conv2_bias
// CHECK:      nn.param @fc_weight : tensor<10x8xf32>
// CHECK-NEXT: nn.param trainable @fc_weight_lora_a : tensor<2x8xf32> = dense<{{.*}}> : tensor<2x8xf32> {lora.base = @fc_weight, lora.factor = "a", lora.rank = 2 : i64, lora.alpha = 8.000000e+00 : f64, lora.layout = "out_in"}
// CHECK-NEXT: nn.param trainable @fc_weight_lora_b : tensor<10x2xf32> = dense<0.000000e+00> : tensor<10x2xf32> {lora.base = @fc_weight, lora.factor = "b", {{.*}}}
// CHECK-NEXT: nn.param @fc_bias : tensor<10xf32>
// CHECK-LABEL: func.func @train_step
// CHECK:      %logits_base = nn.linear %flat, %wf, %bf
// CHECK:      %logits = nn.add %logits_base, %logits_lora_up
// CHECK-NEXT: %loss = train.cross_entropy %logits, %labels
// The backward: B's gradient and update, then A's through the scale; no input gradient
// of the frozen network, no gradient of the base weight.
// CHECK-NEXT: %d_logits = train.cross_entropy_grad %logits, %labels : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<4x10xf32>
// CHECK-NEXT: %d_logits_lora_scaled = train.linear_grad_input %d_logits, %fc_weight_lora_b : (tensor<4x10xf32>, tensor<10x2xf32>) -> tensor<4x2xf32>
// CHECK-NEXT: %d_fc_weight_lora_b = train.linear_grad_weight %d_logits, %logits_lora_scaled : (tensor<4x10xf32>, tensor<4x2xf32>) -> tensor<10x2xf32>
// CHECK-NEXT: %fc_weight_lora_b_new = train.sgd %fc_weight_lora_b, %d_fc_weight_lora_b {lr = 1.000000e-02 : f32} : tensor<10x2xf32>
// CHECK-NEXT: train.store %fc_weight_lora_b_new, @fc_weight_lora_b : tensor<10x2xf32>
// CHECK-NEXT: %d_logits_lora_down = nn.mul %d_logits_lora_scaled, %logits_lora_scale : (tensor<4x2xf32>, tensor<f32>) -> tensor<4x2xf32>
// CHECK-NEXT: %d_fc_weight_lora_a = train.linear_grad_weight %d_logits_lora_down, %flat : (tensor<4x2xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: %fc_weight_lora_a_new = train.sgd %fc_weight_lora_a, %d_fc_weight_lora_a {lr = 1.000000e-02 : f32} : tensor<2x8xf32>
// CHECK-NEXT: train.store %fc_weight_lora_a_new, @fc_weight_lora_a : tensor<2x8xf32>
// CHECK-NEXT: func.return %loss : tensor<f32>

// `trainable` adds parameters of the model; the gradient now flows back into conv2.
// MIX:      nn.param trainable @conv2_weight
// MIX:      nn.param trainable @conv2_bias
// MIX:      nn.param @fc_weight : tensor<10x8xf32>
// MIX-NEXT: nn.param trainable @fc_weight_lora_a
// MIX-NEXT: nn.param @fc_weight_lora_a_exp_avg : tensor<2x8xf32>
// MIX:      nn.param @fc_bias : tensor<10xf32>
// MIX-LABEL: func.func @train_step
// MIX:      %logits_lora_up = nn.linear %logits_lora_down, %fc_weight_lora_b
// MIX:      %d_flat = train.linear_grad_input
// MIX:      train.store %{{.*}}, @fc_weight_lora_a
// MIX:      %d_conv2_weight = train.conv2d_grad_weight
// MIX:      train.store %conv2_bias_new, @conv2_bias

// STAGES:      // -----// IR after freeze{frozen=".*"} //----- //
// STAGES-NOT:  nn.param trainable
// STAGES:      // -----// IR after insert-lora{rank=2 targets="fc_weight"} //----- //
// STAGES:      nn.param trainable @fc_weight_lora_a
// STAGES-NOT:  func.func @train_step
// STAGES:      // -----// IR after autodiff //----- //
// STAGES:      func.func @train_step
// STAGES:      // -----// IR after dce //----- //

// CONV: edge-opt: error: pass failed: insert-lora: targets='conv1_weight' matches no weight of a linear layer (it matches 1 parameter(s), conv1_weight, but none is the weight of an nn.linear or the right operand of a 2-D nn.matmul); the model's linear-layer weights: fc_weight
