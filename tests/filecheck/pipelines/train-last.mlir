// train-last{layers=k} on the example CNN: select-last-layers freezes all but the last k
// parametrised layers, then autodiff builds @train_step (and canonicalize, cse, dce
// clean up). Backpropagation stops at the first trained layer.

// RUN: edge-opt %examples/tiny_cnn.mlir -p "train-last{layers=1}" | filecheck %s --check-prefix=ONE
// RUN: edge-opt %examples/tiny_cnn.mlir --pipeline "train-last{layers=2 optimizer=adam lr=0.001}" | filecheck %s --check-prefix=TWO
// RUN: edge-opt %examples/tiny_cnn.mlir -p "train-last{layers=2}" --print-ir-after-all 2>&1 | filecheck %s --check-prefix=STAGES

// Linear probing: only the classifier trains; the backward is its weight gradient and
// bias sum, and no input gradient at all.
// ONE:      nn.param @conv1_weight
// ONE:      nn.param @conv2_weight
// ONE:      nn.param @conv2_bias
// ONE:      nn.param trainable @fc_weight
// ONE:      nn.param trainable @fc_bias
// ONE-LABEL: func.func @train_step(%image: tensor<4x1x12x12xf32> {nn.name = "image"}, %labels: tensor<4xi32> {nn.name = "labels"}) -> (tensor<f32> {nn.name = "loss"}) {
// ONE:      %p1 = nn.max_pool2d %r1
// ONE:      %loss = train.cross_entropy %logits, %labels : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<f32>
// ONE-NEXT: %d_logits = train.cross_entropy_grad %logits, %labels : (tensor<4x10xf32>, tensor<4xi32>) -> tensor<4x10xf32>
// ONE-NEXT: %d_fc_weight = train.linear_grad_weight %d_logits, %flat : (tensor<4x10xf32>, tensor<4x8xf32>) -> tensor<10x8xf32>
// ONE-NEXT: %d_fc_bias = nn.reduce_sum %d_logits {axes = array<i64: 0>} : tensor<4x10xf32> -> tensor<10xf32>
// ONE-NEXT: %fc_weight_new = train.sgd %wf, %d_fc_weight {lr = 1.000000e-02 : f32} : tensor<10x8xf32>
// ONE-NEXT: train.store %fc_weight_new, @fc_weight : tensor<10x8xf32>
// ONE-NEXT: %fc_bias_new = train.sgd %bf, %d_fc_bias {lr = 1.000000e-02 : f32} : tensor<10xf32>
// ONE-NEXT: train.store %fc_bias_new, @fc_bias : tensor<10xf32>
// ONE-NEXT: func.return %loss : tensor<f32>

// The last two layers (conv2 and the classifier) train with Adam; the gradient flows from
// the classifier into conv2 and stops there: no input gradient of conv2, so the frozen
// max-pool keeps no index mask and has no backward.
// TWO:      nn.param @conv1_weight
// TWO:      nn.param @bn1_scale
// TWO:      nn.param trainable @conv2_weight : tensor<8x4x3x3xf32>
// TWO-NEXT: nn.param @conv2_weight_exp_avg : tensor<8x4x3x3xf32> = dense<0.000000e+00> : tensor<8x4x3x3xf32> {train.state = "exp_avg", train.state_of = @conv2_weight}
// TWO-NEXT: nn.param @conv2_weight_exp_avg_sq : tensor<8x4x3x3xf32> = dense<0.000000e+00> : tensor<8x4x3x3xf32> {train.state = "exp_avg_sq", train.state_of = @conv2_weight}
// TWO-NEXT: nn.param trainable @conv2_bias
// TWO:      nn.param trainable @fc_weight
// TWO:      nn.param @adam_step : tensor<f32> = dense<0.000000e+00> : tensor<f32> {train.state = "step"}
// TWO-LABEL: func.func @train_step
// TWO:      %p1 = nn.max_pool2d %r1
// TWO:      %loss = train.cross_entropy %logits, %labels
// TWO-NOT:  train.max_pool2d
// TWO-NOT:  train.conv2d_grad_input
// TWO-NOT:  @conv1_weight
// TWO:      %d_flat = train.linear_grad_input %d_logits, %wf
// TWO:      train.store %fc_bias_new, @fc_bias
// TWO-NEXT: %d_gap = nn.reshape %d_flat : tensor<4x8xf32> -> tensor<4x8x1x1xf32>
// TWO:      %d_c2 = train.relu_grad %d_r2, %r2 : tensor<4x8x3x3xf32>
// TWO-NEXT: %d_conv2_weight = train.conv2d_grad_weight %d_c2, %p1 {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<4x8x3x3xf32>, tensor<4x4x6x6xf32>) -> tensor<8x4x3x3xf32>
// TWO-NEXT: %d_conv2_bias = nn.reduce_sum %d_c2 {axes = array<i64: 0, 2, 3>} : tensor<4x8x3x3xf32> -> tensor<8xf32>
// TWO:      train.adam %w2, %d_conv2_weight, %{{.*}}, %{{.*}}, %step {lr = 1.000000e-03 : f32} : tensor<8x4x3x3xf32>, tensor<f32>
// TWO:      train.store %conv2_bias_new, @conv2_bias : tensor<8xf32>
// TWO-NEXT: func.return %loss : tensor<f32>

// The pipeline runs as its passes, each printed.
// STAGES:      // -----// IR after select-last-layers{layers=2} //----- //
// STAGES:      nn.param trainable @conv2_weight
// STAGES-NOT:  func.func @train_step
// STAGES:      // -----// IR after autodiff //----- //
// STAGES:      func.func @train_step
// STAGES:      // -----// IR after canonicalize //----- //
// STAGES:      // -----// IR after cse //----- //
// STAGES:      // -----// IR after dce //----- //
