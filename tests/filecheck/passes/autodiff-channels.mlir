// autodiff on parameters restricted to some output channels (train.channels): the
// weight gradient is computed for those channels only, the optimizer state has their
// shape, and the update is gathered, stepped and scattered back. A restricted parameter
// read by anything but the weight or bias of nn.linear or of nn.conv2d with groups = 1
// is an error that names the op.

// RUN: edge-opt %s -p "autodiff{optimizer=adam lr=0.001}" | filecheck %s
// RUN: not edge-opt %s -p "autodiff{function=matmul loss=mse}" 2>&1 | filecheck %s --check-prefix=MATMUL
// RUN: not edge-opt %s -p "autodiff{function=grouped loss=mse}" 2>&1 | filecheck %s --check-prefix=GROUPED

nn.param trainable @w : tensor<4x3xf32> {train.channels = array<i64: 1, 3>, train.channel_axis = 0 : i64}
nn.param trainable @cw : tensor<4x1x1x1xf32> {train.channels = array<i64: 0>, train.channel_axis = 0 : i64}

func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  %w = nn.load @w : tensor<4x3xf32>
  %y = nn.linear %x, %w : (tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
  func.return %y : tensor<2x4xf32>
}

func.func @matmul(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = nn.load @w : tensor<4x3xf32>
  %y = nn.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

func.func @grouped(%x: tensor<1x2x2x2xf32>) -> tensor<1x4x2x2xf32> {
  %cw = nn.load @cw : tensor<4x1x1x1xf32>
  %y = nn.conv2d %x, %cw {groups = 2 : i64} : (tensor<1x2x2x2xf32>, tensor<4x1x1x1xf32>) -> tensor<1x4x2x2xf32>
  func.return %y : tensor<1x4x2x2xf32>
}

// CHECK:      nn.param trainable @w : tensor<4x3xf32> {train.channels = array<i64: 1, 3>, train.channel_axis = 0 : i64}
// CHECK-NEXT: nn.param @w_exp_avg : tensor<2x3xf32> = dense<0.000000e+00> : tensor<2x3xf32> {train.state = "exp_avg", train.state_of = @w}
// CHECK-NEXT: nn.param @w_exp_avg_sq : tensor<2x3xf32> = dense<0.000000e+00> : tensor<2x3xf32> {train.state = "exp_avg_sq", train.state_of = @w}

// CHECK-LABEL: func.func @train_step
// CHECK:         %d_y = train.cross_entropy_grad %y, %labels : (tensor<2x4xf32>, tensor<2xi32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %d_y_channels = nn.gather %d_y {axis = 1 : i64, indices = array<i64: 1, 3>} : tensor<2x4xf32> -> tensor<2x2xf32>
// CHECK-NEXT:    %d_w = train.linear_grad_weight %d_y_channels, %x : (tensor<2x2xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    %w_channels = nn.gather %w {axis = 0 : i64, indices = array<i64: 1, 3>} : tensor<4x3xf32> -> tensor<2x3xf32>
// CHECK-NEXT:    %0 = nn.load @w_exp_avg : tensor<2x3xf32>
// CHECK-NEXT:    %1 = nn.load @w_exp_avg_sq : tensor<2x3xf32>
// CHECK:         %w_channels_new, %w_exp_avg_new, %w_exp_avg_sq_new = train.adam %w_channels, %d_w, %0, %1, %step {lr = 1.000000e-03 : f32} : tensor<2x3xf32>, tensor<f32>
// CHECK-NEXT:    train.store %w_exp_avg_new, @w_exp_avg : tensor<2x3xf32>
// CHECK-NEXT:    train.store %w_exp_avg_sq_new, @w_exp_avg_sq : tensor<2x3xf32>
// CHECK-NEXT:    %w_new = train.scatter %w, %w_channels_new {axis = 0 : i64, indices = array<i64: 1, 3>} : tensor<4x3xf32>, tensor<2x3xf32>
// CHECK-NEXT:    train.store %w_new, @w : tensor<4x3xf32>
// CHECK-NEXT:    func.return %loss : tensor<f32>

// MATMUL: edge-opt: error: pass failed: autodiff: @w is updated by channel (train.channels) but nn.matmul %y reads it; only the weight or bias of nn.linear and of nn.conv2d with groups = 1 can be
// MATMUL-NOT: Traceback

// GROUPED: edge-opt: error: pass failed: autodiff: @cw is updated by channel (train.channels) but nn.conv2d %y (groups = 2) reads it; only the weight or bias of nn.linear and of nn.conv2d with groups = 1 can be
// GROUPED-NOT: Traceback
