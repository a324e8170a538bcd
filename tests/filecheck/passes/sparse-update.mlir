// sparse-update picks layers, and where it pays output channels, under a budget of
// backward memory; autodiff then updates a channel-restricted parameter at those channels
// only: the output gradient is gathered to them before the weight-gradient op, the
// optimizer runs on the gathered channels and train.scatter writes them back.
// Under 0.3 KiB the head trains whole and the hidden layer at 4 of its 8 channels (the
// whole hidden layer would need 0.35 KiB); without channels only the head fits.

// RUN: edge-opt %s -p "sparse-update{budget-kib=0.3},autodiff{lr=0.1}" 2>/dev/null | filecheck %s
// RUN: edge-opt %s -p "sparse-update{budget-kib=0.3}" 2>&1 >/dev/null | filecheck %s --check-prefix=TABLE
// RUN: edge-opt %s -p "sparse-update{budget-kib=0.3 channels=false}" 2>/dev/null | filecheck %s --check-prefix=LAYERS
// RUN: edge-opt %s -p "sparse-update{budget-kib=0.15}" 2>/dev/null | filecheck %s --check-prefix=TIGHT
// RUN: not edge-opt %s -p "sparse-update{budget-kib=0.15 channels=false}" 2>&1 | filecheck %s --check-prefix=TOO-SMALL

nn.param trainable @w0 : tensor<8x4xf32> = dense<[[1.43, -1.79, 0.29, -0.40], [-0.32, -0.15, -1.41, -0.16], [-0.61, 2.33, 0.16, -0.25], [-0.20, -0.47, -0.74, -0.27], [0.34, -0.17, 0.67, -0.14], [0.02, 1.08, 0.38, -0.35], [-0.13, 0.38, 1.35, -0.19], [-0.17, 0.70, -0.62, -0.20]]> : tensor<8x4xf32>
nn.param trainable @b0 : tensor<8xf32> = dense<[0.18, 0.12, 0.02, 0.13, -0.57, 0.20, -0.19, -0.33]> : tensor<8xf32>
nn.param trainable @w1 : tensor<3x8xf32> = dense<[[0.14, 0.35, -0.22, -0.54, 0.01, -0.03, 0.70, 0.37], [0.10, 0.56, -0.10, -0.46, 0.29, 0.29, -0.11, -0.39], [0.11, -1.25, 0.35, 0.25, -0.82, 0.03, -0.48, 0.38]]> : tensor<3x8xf32>
nn.param trainable @b1 : tensor<3xf32> = dense<[-0.41, -0.18, 0.14]> : tensor<3xf32>

func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w0 = nn.load @w0 : tensor<8x4xf32>
  %b0 = nn.load @b0 : tensor<8xf32>
  %h = nn.linear %x, %w0, %b0 : (tensor<2x4xf32>, tensor<8x4xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  %r = nn.relu %h : tensor<2x8xf32>
  %w1 = nn.load @w1 : tensor<3x8xf32>
  %b1 = nn.load @b1 : tensor<3xf32>
  %y = nn.linear %r, %w1, %b1 : (tensor<2x8xf32>, tensor<3x8xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// The hidden layer's top 4 channels by Fisher information, on its weight and its bias.
// CHECK:      nn.param trainable @w0 : tensor<8x4xf32> {train.channels = array<i64: 0, 2, 5, 6>, train.channel_axis = 0 : i64}
// CHECK-NEXT: nn.param trainable @b0 : tensor<8xf32> = {{.*}} {train.channels = array<i64: 0, 2, 5, 6>, train.channel_axis = 0 : i64}
// CHECK-NEXT: nn.param trainable @w1 : tensor<3x8xf32>{{$}}
// CHECK-NEXT: nn.param trainable @b1 : tensor<3xf32> = {{[^{]*$}}

// The head trains whole; the hidden layer: gather -> weight gradient -> sgd -> scatter -> store.
// CHECK-LABEL: func.func @train_step
// CHECK:         %d_w1 = train.linear_grad_weight %d_y, %r : (tensor<2x3xf32>, tensor<2x8xf32>) -> tensor<3x8xf32>
// CHECK:         %w1_new = train.sgd %w1, %d_w1 {lr = 1.000000e-01 : f32} : tensor<3x8xf32>
// CHECK-NEXT:    train.store %w1_new, @w1 : tensor<3x8xf32>
// CHECK:         %d_h = train.relu_grad %d_r, %r : tensor<2x8xf32>
// CHECK-NEXT:    %d_h_channels = nn.gather %d_h {axis = 1 : i64, indices = array<i64: 0, 2, 5, 6>} : tensor<2x8xf32> -> tensor<2x4xf32>
// CHECK-NEXT:    %d_w0 = train.linear_grad_weight %d_h_channels, %x : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<4x4xf32>
// CHECK-NEXT:    %d_b0 = nn.reduce_sum %d_h_channels {axes = array<i64: 0>} : tensor<2x4xf32> -> tensor<4xf32>
// CHECK-NEXT:    %w0_channels = nn.gather %w0 {axis = 0 : i64, indices = array<i64: 0, 2, 5, 6>} : tensor<8x4xf32> -> tensor<4x4xf32>
// CHECK-NEXT:    %w0_channels_new = train.sgd %w0_channels, %d_w0 {lr = 1.000000e-01 : f32} : tensor<4x4xf32>
// CHECK-NEXT:    %w0_new = train.scatter %w0, %w0_channels_new {axis = 0 : i64, indices = array<i64: 0, 2, 5, 6>} : tensor<8x4xf32>, tensor<4x4xf32>
// CHECK-NEXT:    train.store %w0_new, @w0 : tensor<8x4xf32>
// CHECK-NEXT:    %b0_channels = nn.gather %b0 {axis = 0 : i64, indices = array<i64: 0, 2, 5, 6>} : tensor<8xf32> -> tensor<4xf32>
// CHECK-NEXT:    %b0_channels_new = train.sgd %b0_channels, %d_b0 {lr = 1.000000e-01 : f32} : tensor<4xf32>
// CHECK-NEXT:    %b0_new = train.scatter %b0, %b0_channels_new {axis = 0 : i64, indices = array<i64: 0, 2, 5, 6>} : tensor<8xf32>, tensor<4xf32>
// CHECK-NEXT:    train.store %b0_new, @b0 : tensor<8xf32>
// CHECK-NEXT:    func.return %loss : tensor<f32>

// The decision table: options by score; a narrower option of a layer is widened when
// the wider one still fits.
// TABLE:      sparse-update: budget 0.3 KiB of backward memory; layers by score (importance per relative memory + compute cost):
// TABLE-NEXT:   layer (its first parameter)                 trains   params     fisher   mem KiB  bwd MFLOP   score  decision
// TABLE-NEXT:   w1                                          1/3 ch        9 {{.*}} widened to all (below)
// TABLE-NEXT:   w1                                             all       27 {{.*}} selected (total 0.19 KiB)
// TABLE-NEXT:   w0                                          2/8 ch       10 {{.*}} widened to 4/8 ch (below)
// TABLE-NEXT:   w0                                          4/8 ch       20 {{.*}} selected, 4 of 8 channels (total 0.27 KiB)
// TABLE-NEXT:   w0                                             all       40 {{.*}} over budget (total would be 0.35 KiB)

// Without channels the hidden layer is frozen and nothing is restricted.
// LAYERS:      nn.param @w0 : tensor<8x4xf32>{{$}}
// LAYERS-NEXT: nn.param @b0 : tensor<8xf32> = {{[^{]*$}}
// LAYERS-NEXT: nn.param trainable @w1 : tensor<3x8xf32>{{$}}
// LAYERS-NEXT: nn.param trainable @b1 : tensor<3xf32> = {{[^{]*$}}

// Below the whole head's 0.19 KiB, one of its channels fits.
// TIGHT:      nn.param @w0 : tensor<8x4xf32>{{$}}
// TIGHT-NEXT: nn.param @b0 : tensor<8xf32> = {{[^{]*$}}
// TIGHT-NEXT: nn.param trainable @w1 : tensor<3x8xf32> {train.channels = array<i64: 1>, train.channel_axis = 0 : i64}
// TIGHT-NEXT: nn.param trainable @b1 : tensor<3xf32> = {{.*}} {train.channels = array<i64: 1>, train.channel_axis = 0 : i64}

// TOO-SMALL: edge-opt: error: pass failed: sparse-update: budget-kib=0.15 is too small: the cheapest layer alone needs 0.19 KiB of backward memory (w1, all)
// TOO-SMALL-NOT: Traceback
