// autodiff builds @train_step from @forward: the forward copy, the loss, then the
// backward sweep with each parameter's update as soon as its gradient is complete.
// The stem is frozen: no backward work flows into it. The differentiated max-pool keeps a
// ui8 index mask, which its backward reads instead of the pool's input.

// RUN: edge-opt %s -p autodiff | filecheck %s
// RUN: edge-opt %s -p autodiff | filecheck %s --check-prefix=FROZEN
// RUN: edge-opt %s -p "autodiff{lr=0.1 momentum=0.9}" | filecheck %s --check-prefix=MOMENTUM
// RUN: edge-opt %s -p "autodiff{optimizer=adam lr=0.001}" | filecheck %s --check-prefix=ADAM
// RUN: edge-opt %s -p "autodiff{loss=mse reduction=sum}" | filecheck %s --check-prefix=MSE
// RUN: edge-opt %s -p "autodiff{momentum=0.9 nesterov=true weight-decay=0.0001}" | filecheck %s --check-prefix=NESTEROV

nn.param @stem_weight : tensor<2x1x3x3xf32>
nn.param trainable @conv_weight : tensor<4x2x3x3xf32>
nn.param trainable @conv_bias : tensor<4xf32>
nn.param trainable @fc_weight : tensor<3x16xf32>
nn.param trainable @fc_bias : tensor<3xf32>

func.func @forward(%x: tensor<2x1x4x4xf32>) -> tensor<2x3xf32> {
  %ws = nn.load @stem_weight : tensor<2x1x3x3xf32>
  %stem = nn.conv2d %x, %ws {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x1x4x4xf32>, tensor<2x1x3x3xf32>) -> tensor<2x2x4x4xf32>
  %r = nn.relu %stem : tensor<2x2x4x4xf32>
  %wc = nn.load @conv_weight : tensor<4x2x3x3xf32>
  %bc = nn.load @conv_bias : tensor<4xf32>
  %c = nn.conv2d %r, %wc, %bc {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x2x4x4xf32>, tensor<4x2x3x3xf32>, tensor<4xf32>) -> tensor<2x4x4x4xf32>
  %p = nn.max_pool2d %c {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<2x4x4x4xf32> -> tensor<2x4x2x2xf32>
  %flat = nn.reshape %p : tensor<2x4x2x2xf32> -> tensor<2x16xf32>
  %wf = nn.load @fc_weight : tensor<3x16xf32>
  %bf = nn.load @fc_bias : tensor<3xf32>
  %logits = nn.linear %flat, %wf, %bf : (tensor<2x16xf32>, tensor<3x16xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %logits : tensor<2x3xf32>
}

// @forward stays as it was, for inference.
// CHECK-LABEL: func.func @forward(%x: tensor<2x1x4x4xf32>) -> tensor<2x3xf32> {
// CHECK:         %p = nn.max_pool2d %c {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<2x4x4x4xf32> -> tensor<2x4x2x2xf32>
// CHECK-NOT:     train.
// CHECK:         func.return %logits : tensor<2x3xf32>

// CHECK-LABEL: func.func @train_step(%x: tensor<2x1x4x4xf32>, %labels: tensor<2xi32> {nn.name = "labels"}) -> (tensor<f32> {nn.name = "loss"}) {
// CHECK-NEXT:    %ws = nn.load @stem_weight : tensor<2x1x3x3xf32>
// CHECK-NEXT:    %stem = nn.conv2d %x, %ws {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x1x4x4xf32>, tensor<2x1x3x3xf32>) -> tensor<2x2x4x4xf32>
// CHECK-NEXT:    %r = nn.relu %stem : tensor<2x2x4x4xf32>
// CHECK-NEXT:    %wc = nn.load @conv_weight : tensor<4x2x3x3xf32>
// CHECK-NEXT:    %bc = nn.load @conv_bias : tensor<4xf32>
// CHECK-NEXT:    %c = nn.conv2d %r, %wc, %bc {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x2x4x4xf32>, tensor<4x2x3x3xf32>, tensor<4xf32>) -> tensor<2x4x4x4xf32>
// CHECK-NEXT:    %p, %p_indices = train.max_pool2d_with_indices %c {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<2x4x4x4xf32> -> tensor<2x4x2x2xf32>, tensor<2x4x2x2xui8>
// CHECK-NEXT:    %flat = nn.reshape %p : tensor<2x4x2x2xf32> -> tensor<2x16xf32>
// CHECK-NEXT:    %wf = nn.load @fc_weight : tensor<3x16xf32>
// CHECK-NEXT:    %bf = nn.load @fc_bias : tensor<3xf32>
// CHECK-NEXT:    %logits = nn.linear %flat, %wf, %bf : (tensor<2x16xf32>, tensor<3x16xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %loss = train.cross_entropy %logits, %labels : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<f32>
// CHECK-NEXT:    %d_logits = train.cross_entropy_grad %logits, %labels : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %d_flat = train.linear_grad_input %d_logits, %wf : (tensor<2x3xf32>, tensor<3x16xf32>) -> tensor<2x16xf32>
// CHECK-NEXT:    %d_fc_weight = train.linear_grad_weight %d_logits, %flat : (tensor<2x3xf32>, tensor<2x16xf32>) -> tensor<3x16xf32>
// CHECK-NEXT:    %d_fc_bias = nn.reduce_sum %d_logits {axes = array<i64: 0>} : tensor<2x3xf32> -> tensor<3xf32>
// CHECK-NEXT:    %fc_weight_new = train.sgd %wf, %d_fc_weight {lr = 1.000000e-02 : f32} : tensor<3x16xf32>
// CHECK-NEXT:    train.store %fc_weight_new, @fc_weight : tensor<3x16xf32>
// CHECK-NEXT:    %fc_bias_new = train.sgd %bf, %d_fc_bias {lr = 1.000000e-02 : f32} : tensor<3xf32>
// CHECK-NEXT:    train.store %fc_bias_new, @fc_bias : tensor<3xf32>
// CHECK-NEXT:    %d_p = nn.reshape %d_flat : tensor<2x16xf32> -> tensor<2x4x2x2xf32>
// CHECK-NEXT:    %d_c = train.max_pool2d_grad %d_p, %p_indices {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : (tensor<2x4x2x2xf32>, tensor<2x4x2x2xui8>) -> tensor<2x4x4x4xf32>
// CHECK-NEXT:    %d_conv_weight = train.conv2d_grad_weight %d_c, %r {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x4x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<4x2x3x3xf32>
// CHECK-NEXT:    %d_conv_bias = nn.reduce_sum %d_c {axes = array<i64: 0, 2, 3>} : tensor<2x4x4x4xf32> -> tensor<4xf32>
// CHECK-NEXT:    %conv_weight_new = train.sgd %wc, %d_conv_weight {lr = 1.000000e-02 : f32} : tensor<4x2x3x3xf32>
// CHECK-NEXT:    train.store %conv_weight_new, @conv_weight : tensor<4x2x3x3xf32>
// CHECK-NEXT:    %conv_bias_new = train.sgd %bc, %d_conv_bias {lr = 1.000000e-02 : f32} : tensor<4xf32>
// CHECK-NEXT:    train.store %conv_bias_new, @conv_bias : tensor<4xf32>
// CHECK-NEXT:    func.return %loss : tensor<f32>

// The frozen stem: no input gradient flows into it, nothing differentiates its relu, and
// it is never stored.
// FROZEN-LABEL: func.func @train_step
// FROZEN:       %loss = train.cross_entropy
// FROZEN-NOT:   train.conv2d_grad_input
// FROZEN-NOT:   train.relu_grad
// FROZEN-NOT:   @stem_weight
// FROZEN:       func.return %loss : tensor<f32>

// Momentum: one zero-initialised buffer per trained parameter, right after it.
// MOMENTUM:      nn.param @stem_weight : tensor<2x1x3x3xf32>
// MOMENTUM-NEXT: nn.param trainable @conv_weight : tensor<4x2x3x3xf32>
// MOMENTUM-NEXT: nn.param @conv_weight_momentum : tensor<4x2x3x3xf32> = dense<0.000000e+00> : tensor<4x2x3x3xf32> {train.state = "momentum", train.state_of = @conv_weight}
// MOMENTUM-NEXT: nn.param trainable @conv_bias : tensor<4xf32>
// MOMENTUM-NEXT: nn.param @conv_bias_momentum : tensor<4xf32> = dense<0.000000e+00> : tensor<4xf32> {train.state = "momentum", train.state_of = @conv_bias}
// MOMENTUM-NEXT: nn.param trainable @fc_weight : tensor<3x16xf32>
// MOMENTUM-NEXT: nn.param @fc_weight_momentum : tensor<3x16xf32> = dense<0.000000e+00> : tensor<3x16xf32> {train.state = "momentum", train.state_of = @fc_weight}
// MOMENTUM-NEXT: nn.param trainable @fc_bias : tensor<3xf32>
// MOMENTUM-NEXT: nn.param @fc_bias_momentum : tensor<3xf32> = dense<0.000000e+00> : tensor<3xf32> {train.state = "momentum", train.state_of = @fc_bias}
// MOMENTUM-LABEL: func.func @train_step
// MOMENTUM:      %d_fc_bias = nn.reduce_sum %d_logits
// MOMENTUM-NEXT: %[[BUF:.*]] = nn.load @fc_weight_momentum : tensor<3x16xf32>
// MOMENTUM-NEXT: %fc_weight_new, %[[NEWBUF:.*]] = train.sgd_momentum %wf, %d_fc_weight, %[[BUF]] {lr = 1.000000e-01 : f32, momentum = 9.000000e-01 : f32} : tensor<3x16xf32>
// MOMENTUM-NEXT: train.store %[[NEWBUF]], @fc_weight_momentum : tensor<3x16xf32>
// MOMENTUM-NEXT: train.store %fc_weight_new, @fc_weight : tensor<3x16xf32>
// MOMENTUM:      train.store %conv_bias_new, @conv_bias : tensor<4xf32>
// MOMENTUM-NEXT: func.return %loss : tensor<f32>

// Adam: two moments per trained parameter and one step counter, incremented once per
// step before the first update.
// ADAM:      nn.param trainable @fc_weight : tensor<3x16xf32>
// ADAM-NEXT: nn.param @fc_weight_exp_avg : tensor<3x16xf32> = dense<0.000000e+00> : tensor<3x16xf32> {train.state = "exp_avg", train.state_of = @fc_weight}
// ADAM-NEXT: nn.param @fc_weight_exp_avg_sq : tensor<3x16xf32> = dense<0.000000e+00> : tensor<3x16xf32> {train.state = "exp_avg_sq", train.state_of = @fc_weight}
// ADAM:      nn.param @adam_step : tensor<f32> = dense<0.000000e+00> : tensor<f32> {train.state = "step"}
// ADAM-NOT:  @stem_weight_exp_avg
// ADAM-LABEL: func.func @train_step
// ADAM:      %d_fc_bias = nn.reduce_sum %d_logits
// ADAM-NEXT: %[[M:.*]] = nn.load @fc_weight_exp_avg : tensor<3x16xf32>
// ADAM-NEXT: %[[V:.*]] = nn.load @fc_weight_exp_avg_sq : tensor<3x16xf32>
// ADAM-NEXT: %[[T:.*]] = nn.load @adam_step : tensor<f32>
// ADAM-NEXT: %[[ONE:.*]] = nn.constant dense<1.000000e+00> : tensor<f32>
// ADAM-NEXT: %step = nn.add %[[T]], %[[ONE]] : (tensor<f32>, tensor<f32>) -> tensor<f32>
// ADAM-NEXT: train.store %step, @adam_step : tensor<f32>
// ADAM-NEXT: %fc_weight_new, %[[NEWM:.*]], %[[NEWV:.*]] = train.adam %wf, %d_fc_weight, %[[M]], %[[V]], %step {lr = 1.000000e-03 : f32} : tensor<3x16xf32>, tensor<f32>
// ADAM-NEXT: train.store %[[NEWM]], @fc_weight_exp_avg : tensor<3x16xf32>
// ADAM-NEXT: train.store %[[NEWV]], @fc_weight_exp_avg_sq : tensor<3x16xf32>
// ADAM-NEXT: train.store %fc_weight_new, @fc_weight : tensor<3x16xf32>
// ADAM-NOT:  @adam_step
// ADAM:      train.adam %bc, %d_conv_bias, %{{.*}}, %{{.*}}, %step {lr = 1.000000e-03 : f32} : tensor<4xf32>, tensor<f32>
// ADAM:      func.return %loss : tensor<f32>

// loss=mse: the labels have the output's type.
// MSE-LABEL: func.func @train_step(%x: tensor<2x1x4x4xf32>, %labels: tensor<2x3xf32> {nn.name = "labels"}) -> (tensor<f32> {nn.name = "loss"}) {
// MSE:       %loss = train.mse %logits, %labels {reduction = "sum"} : tensor<2x3xf32> -> tensor<f32>
// MSE-NEXT:  %d_logits = train.mse_grad %logits, %labels {reduction = "sum"} : tensor<2x3xf32>
// MSE-NEXT:  %d_flat = train.linear_grad_input %d_logits, %wf

// NESTEROV-NOT: @stem_weight_momentum
// NESTEROV:     train.sgd_momentum %wf, %d_fc_weight, %{{.*}} {lr = 1.000000e-02 : f32, momentum = 9.000000e-01 : f32, weight_decay = 1.000000e-04 : f32, nesterov} : tensor<3x16xf32>
