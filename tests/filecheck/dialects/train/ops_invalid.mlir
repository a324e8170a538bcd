// Every verifier rule of the train dialect: the message starts with the op name and
// says which rule is broken.
// RUN: edge-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @store_missing(%v: tensor<2xf32>) {
  // CHECK: {{^ *}}train.store: no parameter named @w in the module
  train.store %v, @w : tensor<2xf32>
  func.return
}

// -----

func.func @f() {
  func.return
}
func.func @store_not_param(%v: tensor<2xf32>) {
  // CHECK: {{^ *}}train.store: @f is a func.func, not an nn.param
  train.store %v, @f : tensor<2xf32>
  func.return
}

// -----

nn.param trainable @w : tensor<3xf32>
func.func @store_type(%v: tensor<2xf32>) {
  // CHECK: {{^ *}}train.store: value type tensor<2xf32> does not match the type tensor<3xf32> of @w
  train.store %v, @w : tensor<2xf32>
  func.return
}

// -----

func.func @cross_entropy_reduction(%x: tensor<4x10xf32>, %l: tensor<4xi64>) -> tensor<f32> {
  // CHECK: {{^ *}}train.cross_entropy: reduction must be "mean" or "sum", got "max"
  %y = train.cross_entropy %x, %l {reduction = "max"} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f32>
  func.return %y : tensor<f32>
}

// -----

func.func @cross_entropy_rank(%x: tensor<4x10x2xf32>, %l: tensor<4xi64>) -> tensor<f32> {
  // CHECK: {{^ *}}train.cross_entropy: logits must have rank 2 (N, C), got [4, 10, 2]
  %y = train.cross_entropy %x, %l : (tensor<4x10x2xf32>, tensor<4xi64>) -> tensor<f32>
  func.return %y : tensor<f32>
}

// -----

func.func @cross_entropy_labels(%x: tensor<4x10xf32>, %l: tensor<3xi64>) -> tensor<f32> {
  // CHECK: {{^ *}}train.cross_entropy: labels has shape [3], expected [4]
  %y = train.cross_entropy %x, %l : (tensor<4x10xf32>, tensor<3xi64>) -> tensor<f32>
  func.return %y : tensor<f32>
}

// -----

func.func @cross_entropy_loss(%x: tensor<4x10xf32>, %l: tensor<4xi64>) -> tensor<1xf32> {
  // CHECK: {{^ *}}train.cross_entropy: the loss has shape [1], expected []
  %y = train.cross_entropy %x, %l : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<1xf32>
  func.return %y : tensor<1xf32>
}

// -----

func.func @cross_entropy_element_types(%x: tensor<4x10xf32>, %l: tensor<4xi64>) -> tensor<f64> {
  // CHECK: {{^ *}}train.cross_entropy: operand and result element types differ (f32, f64)
  %y = train.cross_entropy %x, %l : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<f64>
  func.return %y : tensor<f64>
}

// -----

func.func @cross_entropy_grad_rank(%x: tensor<10xf32>, %l: tensor<10xi32>) -> tensor<10xf32> {
  // CHECK: {{^ *}}train.cross_entropy_grad: logits must have rank 2 (N, C), got [10]
  %y = train.cross_entropy_grad %x, %l : (tensor<10xf32>, tensor<10xi32>) -> tensor<10xf32>
  func.return %y : tensor<10xf32>
}

// -----

func.func @cross_entropy_grad_labels(%x: tensor<4x10xf32>, %l: tensor<4x1xi32>) -> tensor<4x10xf32> {
  // CHECK: {{^ *}}train.cross_entropy_grad: labels has shape [4, 1], expected [4]
  %y = train.cross_entropy_grad %x, %l : (tensor<4x10xf32>, tensor<4x1xi32>) -> tensor<4x10xf32>
  func.return %y : tensor<4x10xf32>
}

// -----

func.func @cross_entropy_grad_result(%x: tensor<4x10xf32>, %l: tensor<4xi64>) -> tensor<4x9xf32> {
  // CHECK: {{^ *}}train.cross_entropy_grad: the result has shape [4, 9], expected [4, 10]
  %y = train.cross_entropy_grad %x, %l {reduction = "sum"} : (tensor<4x10xf32>, tensor<4xi64>) -> tensor<4x9xf32>
  func.return %y : tensor<4x9xf32>
}

// -----

func.func @mse_loss(%p: tensor<2x3xf32>, %t: tensor<2x3xf32>) -> tensor<2xf32> {
  // CHECK: {{^ *}}train.mse: the loss has shape [2], expected []
  %y = train.mse %p, %t : tensor<2x3xf32> -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}

// -----

func.func @mse_element_types(%p: tensor<2x3xf32>, %t: tensor<2x3xf32>) -> tensor<f16> {
  // CHECK: {{^ *}}train.mse: operand and result element types differ (f16, f32)
  %y = train.mse %p, %t : tensor<2x3xf32> -> tensor<f16>
  func.return %y : tensor<f16>
}

// -----

func.func @mse_grad_reduction(%p: tensor<2x3xf32>, %t: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.mse_grad: reduction must be "mean" or "sum", got "none"
  %y = train.mse_grad %p, %t {reduction = "none"} : tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @gelu_grad_approximate(%dy: tensor<2x3xf32>, %x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.gelu_grad: approximate must be "none" or "tanh", got "fast"
  %y = train.gelu_grad %dy, %x {approximate = "fast"} : tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @softmax_grad_axis(%dy: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.softmax_grad: axis 2 is out of range for rank 2
  %dx = train.softmax_grad %dy, %y {axis = 2 : i64} : tensor<2x3xf32>
  func.return %dx : tensor<2x3xf32>
}

// -----

func.func @log_softmax_grad_axis(%dy: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.log_softmax_grad: axis -3 is out of range for rank 2
  %dx = train.log_softmax_grad %dy, %y {axis = -3 : i64} : tensor<2x3xf32>
  func.return %dx : tensor<2x3xf32>
}

// -----

func.func @layer_norm_grad_input_axis(%dy: tensor<2x3xf32>, %x: tensor<2x3xf32>, %s: tensor<3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_input: axis 2 is out of range for rank 2
  %dx = train.layer_norm_grad_input %dy, %x, %s {axis = 2 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %dx : tensor<2x3xf32>
}

// -----

func.func @layer_norm_grad_input_grad(%dy: tensor<3x2xf32>, %x: tensor<2x3xf32>, %s: tensor<3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_input: the output gradient has shape [3, 2], expected [2, 3]
  %dx = train.layer_norm_grad_input %dy, %x, %s : (tensor<3x2xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %dx : tensor<2x3xf32>
}

// -----

func.func @layer_norm_grad_input_scale(%dy: tensor<2x3xf32>, %x: tensor<2x3xf32>, %s: tensor<3xf32>) -> tensor<2x3xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_input: scale has shape [3], expected [2, 3]
  %dx = train.layer_norm_grad_input %dy, %x, %s {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %dx : tensor<2x3xf32>
}

// -----

func.func @layer_norm_grad_input_result(%dy: tensor<2x3xf32>, %x: tensor<2x3xf32>, %s: tensor<3xf32>) -> tensor<3x2xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_input: the result has shape [3, 2], expected [2, 3]
  %dx = train.layer_norm_grad_input %dy, %x, %s : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<3x2xf32>
  func.return %dx : tensor<3x2xf32>
}

// -----

func.func @layer_norm_grad_scale_grad(%dy: tensor<2x4xf32>, %x: tensor<2x3xf32>) -> tensor<3xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_scale: the output gradient has shape [2, 4], expected [2, 3]
  %ds = train.layer_norm_grad_scale %dy, %x : (tensor<2x4xf32>, tensor<2x3xf32>) -> tensor<3xf32>
  func.return %ds : tensor<3xf32>
}

// -----

func.func @layer_norm_grad_scale_result(%dy: tensor<2x3xf32>, %x: tensor<2x3xf32>) -> tensor<3xf32> {
  // CHECK: {{^ *}}train.layer_norm_grad_scale: the result has shape [3], expected [2, 3]
  %ds = train.layer_norm_grad_scale %dy, %x {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3xf32>
  func.return %ds : tensor<3xf32>
}

// -----

func.func @batch_norm_grad_input_rank(%dy: tensor<4xf32>, %x: tensor<4xf32>, %c: tensor<1xf32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_input: input must have rank >= 2, got [4]
  %dx = train.batch_norm_grad_input %dy, %x, %c, %c, %c : (tensor<4xf32>, tensor<4xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<4xf32>
  func.return %dx : tensor<4xf32>
}

// -----

func.func @batch_norm_grad_input_grad(%dy: tensor<2x4x2xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>) -> tensor<2x4x3xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_input: the output gradient has shape [2, 4, 2], expected [2, 4, 3]
  %dx = train.batch_norm_grad_input %dy, %x, %c, %c, %c {training} : (tensor<2x4x2xf32>, tensor<2x4x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3xf32>
  func.return %dx : tensor<2x4x3xf32>
}

// -----

func.func @batch_norm_grad_input_var(%dy: tensor<2x4x3xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>, %v: tensor<3xf32>) -> tensor<2x4x3xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_input: var has shape [3], expected [4]
  %dx = train.batch_norm_grad_input %dy, %x, %c, %c, %v : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<3xf32>) -> tensor<2x4x3xf32>
  func.return %dx : tensor<2x4x3xf32>
}

// -----

func.func @batch_norm_grad_input_result(%dy: tensor<2x4x3xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>) -> tensor<2x4xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_input: the result has shape [2, 4], expected [2, 4, 3]
  %dx = train.batch_norm_grad_input %dy, %x, %c, %c, %c : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  func.return %dx : tensor<2x4xf32>
}

// -----

func.func @batch_norm_grad_input_element_types(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %c: tensor<4xf64>) -> tensor<2x4xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_input: operand and result element types differ (f32, f64)
  %dx = train.batch_norm_grad_input %dy, %x, %c, %c, %c : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<4xf64>, tensor<4xf64>, tensor<4xf64>) -> tensor<2x4xf32>
  func.return %dx : tensor<2x4xf32>
}

// -----

func.func @batch_norm_grad_scale_rank(%dy: tensor<f32>, %x: tensor<f32>, %c: tensor<1xf32>) -> tensor<1xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_scale: input must have rank >= 2, got []
  %ds = train.batch_norm_grad_scale %dy, %x, %c, %c : (tensor<f32>, tensor<f32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1xf32>
  func.return %ds : tensor<1xf32>
}

// -----

func.func @batch_norm_grad_scale_grad(%dy: tensor<4x4xf32>, %x: tensor<2x4xf32>, %c: tensor<4xf32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_scale: the output gradient has shape [4, 4], expected [2, 4]
  %ds = train.batch_norm_grad_scale %dy, %x, %c, %c : (tensor<4x4xf32>, tensor<2x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %ds : tensor<4xf32>
}

// -----

func.func @batch_norm_grad_scale_result(%dy: tensor<2x4xf32>, %x: tensor<2x4xf32>, %c: tensor<4xf32>) -> tensor<2xf32> {
  // CHECK: {{^ *}}train.batch_norm_grad_scale: result has shape [2], expected [4]
  %ds = train.batch_norm_grad_scale %dy, %x, %c, %c : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2xf32>
  func.return %ds : tensor<2xf32>
}

// -----

func.func @group_norm_grad_input_groups(%dy: tensor<2x4x3xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>) -> tensor<2x4x3xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_input: groups (3) must divide the channel count (4)
  %dx = train.group_norm_grad_input %dy, %x, %c {groups = 3 : i64} : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<4xf32>) -> tensor<2x4x3xf32>
  func.return %dx : tensor<2x4x3xf32>
}

// -----

func.func @group_norm_grad_input_rank(%dy: tensor<4xf32>, %x: tensor<4xf32>, %c: tensor<1xf32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_input: input must have rank >= 2, got [4]
  %dx = train.group_norm_grad_input %dy, %x, %c {groups = 1 : i64} : (tensor<4xf32>, tensor<4xf32>, tensor<1xf32>) -> tensor<4xf32>
  func.return %dx : tensor<4xf32>
}

// -----

func.func @group_norm_grad_input_grad(%dy: tensor<2x4xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>) -> tensor<2x4x3xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_input: the output gradient has shape [2, 4], expected [2, 4, 3]
  %dx = train.group_norm_grad_input %dy, %x, %c {groups = 2 : i64} : (tensor<2x4xf32>, tensor<2x4x3xf32>, tensor<4xf32>) -> tensor<2x4x3xf32>
  func.return %dx : tensor<2x4x3xf32>
}

// -----

func.func @group_norm_grad_input_scale(%dy: tensor<2x4x3xf32>, %x: tensor<2x4x3xf32>, %c: tensor<2xf32>) -> tensor<2x4x3xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_input: scale has shape [2], expected [4]
  %dx = train.group_norm_grad_input %dy, %x, %c {groups = 2 : i64} : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<2xf32>) -> tensor<2x4x3xf32>
  func.return %dx : tensor<2x4x3xf32>
}

// -----

func.func @group_norm_grad_input_result(%dy: tensor<2x4x3xf32>, %x: tensor<2x4x3xf32>, %c: tensor<4xf32>) -> tensor<2x4x4xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_input: the result has shape [2, 4, 4], expected [2, 4, 3]
  %dx = train.group_norm_grad_input %dy, %x, %c {groups = 2 : i64} : (tensor<2x4x3xf32>, tensor<2x4x3xf32>, tensor<4xf32>) -> tensor<2x4x4xf32>
  func.return %dx : tensor<2x4x4xf32>
}

// -----

func.func @group_norm_grad_scale_groups(%dy: tensor<2x6xf32>, %x: tensor<2x6xf32>) -> tensor<6xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_scale: groups (0) must divide the channel count (6)
  %ds = train.group_norm_grad_scale %dy, %x {groups = 0 : i64} : (tensor<2x6xf32>, tensor<2x6xf32>) -> tensor<6xf32>
  func.return %ds : tensor<6xf32>
}

// -----

func.func @group_norm_grad_scale_grad(%dy: tensor<1x6xf32>, %x: tensor<2x6xf32>) -> tensor<6xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_scale: the output gradient has shape [1, 6], expected [2, 6]
  %ds = train.group_norm_grad_scale %dy, %x {groups = 3 : i64} : (tensor<1x6xf32>, tensor<2x6xf32>) -> tensor<6xf32>
  func.return %ds : tensor<6xf32>
}

// -----

func.func @group_norm_grad_scale_result(%dy: tensor<2x6xf32>, %x: tensor<2x6xf32>) -> tensor<3xf32> {
  // CHECK: {{^ *}}train.group_norm_grad_scale: the result has shape [3], expected [6]
  %ds = train.group_norm_grad_scale %dy, %x {groups = 3 : i64} : (tensor<2x6xf32>, tensor<2x6xf32>) -> tensor<3xf32>
  func.return %ds : tensor<3xf32>
}

// -----

func.func @linear_grad_input_grad(%dy: tensor<2x4xf32>, %w: tensor<3x5xf32>) -> tensor<2x5xf32> {
  // CHECK: {{^ *}}train.linear_grad_input: the output gradient has shape [2, 4], expected [2, 3]
  %dx = train.linear_grad_input %dy, %w : (tensor<2x4xf32>, tensor<3x5xf32>) -> tensor<2x5xf32>
  func.return %dx : tensor<2x5xf32>
}

// -----

func.func @linear_grad_input_features(%dy: tensor<2x3xf32>, %w: tensor<3x5xf32>) -> tensor<2x4xf32> {
  // CHECK: {{^ *}}train.linear_grad_input: input features (4) must equal weight in-features (5)
  %dx = train.linear_grad_input %dy, %w : (tensor<2x3xf32>, tensor<3x5xf32>) -> tensor<2x4xf32>
  func.return %dx : tensor<2x4xf32>
}

// -----

func.func @linear_grad_input_element_types(%dy: tensor<2x3xf32>, %w: tensor<3x5xf64>) -> tensor<2x5xf32> {
  // CHECK: {{^ *}}train.linear_grad_input: operand and result element types differ (f32, f64)
  %dx = train.linear_grad_input %dy, %w : (tensor<2x3xf32>, tensor<3x5xf64>) -> tensor<2x5xf32>
  func.return %dx : tensor<2x5xf32>
}

// -----

func.func @linear_grad_weight_grad(%dy: tensor<7x3xf32>, %x: tensor<2x5xf32>) -> tensor<3x5xf32> {
  // CHECK: {{^ *}}train.linear_grad_weight: the output gradient has shape [7, 3], expected [2, 3]
  %dw = train.linear_grad_weight %dy, %x : (tensor<7x3xf32>, tensor<2x5xf32>) -> tensor<3x5xf32>
  func.return %dw : tensor<3x5xf32>
}

// -----

func.func @conv2d_grad_input_grad(%dy: tensor<1x4x6x6xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<1x3x8x8xf32> {
  // CHECK: {{^ *}}train.conv2d_grad_input: the output gradient has shape [1, 4, 6, 6], expected [1, 4, 8, 8]
  %dx = train.conv2d_grad_input %dy, %w {padding = array<i64: 1, 1, 1, 1>} : (tensor<1x4x6x6xf32>, tensor<4x3x3x3xf32>) -> tensor<1x3x8x8xf32>
  func.return %dx : tensor<1x3x8x8xf32>
}

// -----

func.func @conv2d_grad_input_channels(%dy: tensor<1x4x6x6xf32>, %w: tensor<4x2x3x3xf32>) -> tensor<1x3x8x8xf32> {
  // CHECK: {{^ *}}train.conv2d_grad_input: weight in-channels (2) x groups (1) must equal input channels (3)
  %dx = train.conv2d_grad_input %dy, %w : (tensor<1x4x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<1x3x8x8xf32>
  func.return %dx : tensor<1x3x8x8xf32>
}

// -----

func.func @conv2d_grad_weight_grad(%dy: tensor<1x4x3x3xf32>, %x: tensor<1x3x8x8xf32>) -> tensor<4x3x3x3xf32> {
  // CHECK: {{^ *}}train.conv2d_grad_weight: the output gradient has shape [1, 4, 3, 3], expected [1, 4, 4, 4]
  %dw = train.conv2d_grad_weight %dy, %x {dilation = array<i64: 2, 2>} : (tensor<1x4x3x3xf32>, tensor<1x3x8x8xf32>) -> tensor<4x3x3x3xf32>
  func.return %dw : tensor<4x3x3x3xf32>
}

// -----

func.func @conv2d_grad_weight_groups(%dy: tensor<1x4x6x6xf32>, %x: tensor<1x4x8x8xf32>) -> tensor<4x2x3x3xf32> {
  // CHECK: {{^ *}}train.conv2d_grad_weight: groups (3) must divide input channels (4) and output channels (4)
  %dw = train.conv2d_grad_weight %dy, %x {groups = 3 : i64} : (tensor<1x4x6x6xf32>, tensor<1x4x8x8xf32>) -> tensor<4x2x3x3xf32>
  func.return %dw : tensor<4x2x3x3xf32>
}

// -----

func.func @conv_transpose2d_grad_input_output_padding(%dy: tensor<1x2x10x10xf32>, %w: tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32> {
  // CHECK: {{^ *}}train.conv_transpose2d_grad_input: output_padding (2) must be >= 0 and smaller than stride or dilation
  %dx = train.conv_transpose2d_grad_input %dy, %w {stride = array<i64: 2, 2>, output_padding = array<i64: 2, 2>} : (tensor<1x2x10x10xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
  func.return %dx : tensor<1x2x4x4xf32>
}

// -----

func.func @conv_transpose2d_grad_input_grad(%dy: tensor<1x2x8x8xf32>, %w: tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32> {
  // CHECK: {{^ *}}train.conv_transpose2d_grad_input: the output gradient has shape [1, 2, 8, 8], expected [1, 2, 10, 10]
  %dx = train.conv_transpose2d_grad_input %dy, %w {stride = array<i64: 2, 2>, output_padding = array<i64: 1, 1>} : (tensor<1x2x8x8xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
  func.return %dx : tensor<1x2x4x4xf32>
}

// -----

func.func @conv_transpose2d_grad_weight_grad(%dy: tensor<1x2x8x8xf32>, %x: tensor<1x2x4x4xf32>) -> tensor<2x1x3x3xf32> {
  // CHECK: {{^ *}}train.conv_transpose2d_grad_weight: the output gradient has shape [1, 2, 8, 8], expected [1, 2, 9, 9]
  %dw = train.conv_transpose2d_grad_weight %dy, %x {stride = array<i64: 2, 2>, groups = 2 : i64} : (tensor<1x2x8x8xf32>, tensor<1x2x4x4xf32>) -> tensor<2x1x3x3xf32>
  func.return %dw : tensor<2x1x3x3xf32>
}

// -----

func.func @max_pool2d_with_indices_window(%x: tensor<1x1x17x17xf32>) -> tensor<1x1x1x1xf32> {
  // CHECK: {{^ *}}train.max_pool2d_with_indices: kernel 17x17 has more than 256 positions, which a ui8 index mask cannot address
  %y, %i = train.max_pool2d_with_indices %x {kernel = array<i64: 17, 17>} : tensor<1x1x17x17xf32> -> tensor<1x1x1x1xf32>, tensor<1x1x1x1xui8>
  func.return %y : tensor<1x1x1x1xf32>
}

// -----

func.func @max_pool2d_with_indices_padding(%x: tensor<1x1x6x6xf32>) -> tensor<1x1x4x4xf32> {
  // CHECK: {{^ *}}train.max_pool2d_with_indices: padding [2, 0, 0, 0] must be at most half the kernel [2, 2]
  %y, %i = train.max_pool2d_with_indices %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 2, 0, 0, 0>} : tensor<1x1x6x6xf32> -> tensor<1x1x4x4xf32>, tensor<1x1x4x4xui8>
  func.return %y : tensor<1x1x4x4xf32>
}

// -----

func.func @max_pool2d_with_indices_indices(%x: tensor<1x1x6x6xf32>) -> tensor<1x1x3x3xf32> {
  // CHECK: {{^ *}}train.max_pool2d_with_indices: the indices has shape [1, 1, 4, 4], expected [1, 1, 3, 3]
  %y, %i = train.max_pool2d_with_indices %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, ceil_mode} : tensor<1x1x6x6xf32> -> tensor<1x1x3x3xf32>, tensor<1x1x4x4xui8>
  func.return %y : tensor<1x1x3x3xf32>
}

// -----

func.func @max_pool2d_with_indices_result(%x: tensor<1x1x7x7xf32>) -> tensor<1x1x3x3xf32> {
  // CHECK: {{^ *}}train.max_pool2d_with_indices: the result has shape [1, 1, 3, 3], expected [1, 1, 4, 4]
  %y, %i = train.max_pool2d_with_indices %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, ceil_mode} : tensor<1x1x7x7xf32> -> tensor<1x1x3x3xf32>, tensor<1x1x4x4xui8>
  func.return %y : tensor<1x1x3x3xf32>
}

// -----

func.func @max_pool2d_with_indices_element_types(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf64> {
  // CHECK: {{^ *}}train.max_pool2d_with_indices: operand and result element types differ (f32, f64)
  %y, %i = train.max_pool2d_with_indices %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x1x4x4xf32> -> tensor<1x1x2x2xf64>, tensor<1x1x2x2xui8>
  func.return %y : tensor<1x1x2x2xf64>
}

// -----

func.func @max_pool2d_grad_window(%dy: tensor<1x1x1x1xf32>, %i: tensor<1x1x1x1xui8>) -> tensor<1x1x20x20xf32> {
  // CHECK: {{^ *}}train.max_pool2d_grad: kernel 20x20 has more than 256 positions, which a ui8 index mask cannot address
  %dx = train.max_pool2d_grad %dy, %i {kernel = array<i64: 20, 20>} : (tensor<1x1x1x1xf32>, tensor<1x1x1x1xui8>) -> tensor<1x1x20x20xf32>
  func.return %dx : tensor<1x1x20x20xf32>
}

// -----

func.func @max_pool2d_grad_grad(%dy: tensor<1x1x2x2xf32>, %i: tensor<1x1x3x3xui8>) -> tensor<1x1x6x6xf32> {
  // CHECK: {{^ *}}train.max_pool2d_grad: the output gradient has shape [1, 1, 2, 2], expected [1, 1, 3, 3]
  %dx = train.max_pool2d_grad %dy, %i {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : (tensor<1x1x2x2xf32>, tensor<1x1x3x3xui8>) -> tensor<1x1x6x6xf32>
  func.return %dx : tensor<1x1x6x6xf32>
}

// -----

func.func @max_pool2d_grad_indices(%dy: tensor<1x1x3x3xf32>, %i: tensor<1x1x3x2xui8>) -> tensor<1x1x6x6xf32> {
  // CHECK: {{^ *}}train.max_pool2d_grad: the indices has shape [1, 1, 3, 2], expected [1, 1, 3, 3]
  %dx = train.max_pool2d_grad %dy, %i {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : (tensor<1x1x3x3xf32>, tensor<1x1x3x2xui8>) -> tensor<1x1x6x6xf32>
  func.return %dx : tensor<1x1x6x6xf32>
}

// -----

func.func @avg_pool2d_grad_grad(%dy: tensor<1x1x3x3xf32>) -> tensor<1x1x7x7xf32> {
  // CHECK: {{^ *}}train.avg_pool2d_grad: the output gradient has shape [1, 1, 3, 3], expected [1, 1, 4, 4]
  %dx = train.avg_pool2d_grad %dy {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, ceil_mode} : tensor<1x1x3x3xf32> -> tensor<1x1x7x7xf32>
  func.return %dx : tensor<1x1x7x7xf32>
}

// -----

func.func @avg_pool2d_grad_window(%dy: tensor<1x1x1x1xf32>) -> tensor<1x1x1x5xf32> {
  // CHECK: {{^ *}}train.avg_pool2d_grad: the window (kernel 2, dilation 1) is larger than the padded input (1 + 0 + 0)
  %dx = train.avg_pool2d_grad %dy {kernel = array<i64: 2, 2>} : tensor<1x1x1x1xf32> -> tensor<1x1x1x5xf32>
  func.return %dx : tensor<1x1x1x5xf32>
}

// -----

func.func @slice_grad_grad(%dy: tensor<2xf32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.slice_grad: the output gradient has shape [2], expected [4]
  %dx = train.slice_grad %dy {starts = array<i64: 3>, ends = array<i64: -1>, steps = array<i64: -1>} : tensor<2xf32> -> tensor<4xf32>
  func.return %dx : tensor<4xf32>
}

// -----

func.func @slice_grad_empty(%dy: tensor<1xf32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.slice_grad: slice along axis 0 is empty
  %dx = train.slice_grad %dy {starts = array<i64: 1>, ends = array<i64: 1>, steps = array<i64: 1>} : tensor<1xf32> -> tensor<4xf32>
  func.return %dx : tensor<4xf32>
}

// -----

func.func @slice_grad_element_types(%dy: tensor<2xi32>) -> tensor<4xf32> {
  // CHECK: {{^ *}}train.slice_grad: operand and result element types differ (f32, i32)
  %dx = train.slice_grad %dy {starts = array<i64: 0>, ends = array<i64: 4>, steps = array<i64: 2>} : tensor<2xi32> -> tensor<4xf32>
  func.return %dx : tensor<4xf32>
}

// -----

func.func @scatter_repeat(%w: tensor<8x4xf32>, %v: tensor<2x4xf32>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: indices [3, 3] repeat an index
  %r = train.scatter %w, %v {axis = 0 : i64, indices = array<i64: 3, 3>} : tensor<8x4xf32>, tensor<2x4xf32>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @scatter_range(%w: tensor<8x4xf32>, %v: tensor<2x4xf32>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: indices [8] are outside [0, 8) (axis 0 of [8, 4])
  %r = train.scatter %w, %v {axis = 0 : i64, indices = array<i64: 0, 8>} : tensor<8x4xf32>, tensor<2x4xf32>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @scatter_values(%w: tensor<8x4xf32>, %v: tensor<2x3xf32>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: values have shape [2, 3], expected [2, 4] (the destination's with axis 0 of size len(indices) = 2)
  %r = train.scatter %w, %v {axis = 0 : i64, indices = array<i64: 0, 1>} : tensor<8x4xf32>, tensor<2x3xf32>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @scatter_empty(%w: tensor<8x4xf32>, %v: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: indices must not be empty
  %r = train.scatter %w, %v {axis = 1 : i64, indices = array<i64>} : tensor<8x4xf32>, tensor<8x4xf32>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @scatter_axis(%w: tensor<8x4xf32>, %v: tensor<8x4xf32>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: axis 2 is out of range for rank 2
  %r = train.scatter %w, %v {axis = 2 : i64, indices = array<i64: 0>} : tensor<8x4xf32>, tensor<8x4xf32>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @scatter_element_types(%w: tensor<8x4xf32>, %v: tensor<1x4xf64>) -> tensor<8x4xf32> {
  // CHECK: {{^ *}}train.scatter: operand and result element types differ (f32, f64)
  %r = train.scatter %w, %v {axis = 0 : i64, indices = array<i64: 0>} : tensor<8x4xf32>, tensor<1x4xf64>
  func.return %r : tensor<8x4xf32>
}

// -----

func.func @adam_step(%p: tensor<3xf32>, %t: tensor<1xf32>) -> tensor<3xf32> {
  // CHECK: {{^ *}}train.adam: step has shape [1], expected []
  %np, %m, %v = train.adam %p, %p, %p, %p, %t {lr = 1.000000e-03 : f32} : tensor<3xf32>, tensor<1xf32>
  func.return %np : tensor<3xf32>
}

// -----

func.func @grad_weight_sgd_chunk(%dy: tensor<2x4xf32>, %x: tensor<2x3xf32>, %w: tensor<4x3xf32>) -> tensor<4x3xf32> {
  // CHECK: {{^ *}}train.linear_grad_weight_sgd: chunk_rows = 5 is outside [1, 4] (the weight's rows)
  %n = train.linear_grad_weight_sgd %dy, %x, %w {lr = 0.1 : f32, chunk_rows = 5 : i64} : (tensor<2x4xf32>, tensor<2x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  func.return %n : tensor<4x3xf32>
}

// -----

func.func @grad_weight_sgd_dy(%dy: tensor<1x8x3x3xf32>, %x: tensor<1x2x4x4xf32>, %w: tensor<8x2x3x3xf32>) -> tensor<8x2x3x3xf32> {
  // CHECK: {{^ *}}train.conv2d_grad_weight_sgd: the output gradient has shape [1, 8, 3, 3], expected [1, 8, 2, 2]
  %n = train.conv2d_grad_weight_sgd %dy, %x, %w {lr = 0.1 : f32} : (tensor<1x8x3x3xf32>, tensor<1x2x4x4xf32>, tensor<8x2x3x3xf32>) -> tensor<8x2x3x3xf32>
  func.return %n : tensor<8x2x3x3xf32>
}
