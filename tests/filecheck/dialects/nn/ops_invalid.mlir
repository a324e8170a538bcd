// Every verifier rule of the nn dialect names the op and the rule broken.
// RUN: edge-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @conv_channels(%x: tensor<1x3x8x8xf32>, %w: tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32> {
  // CHECK: nn.conv2d: weight in-channels (2) x groups (1) must equal input channels (3)
  %y = nn.conv2d %x, %w : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// -----

func.func @conv_groups(%x: tensor<1x4x8x8xf32>, %w: tensor<6x2x3x3xf32>) -> tensor<1x6x6x6xf32> {
  // CHECK: nn.conv2d: groups (4) must divide input channels (4) and output channels (6)
  %y = nn.conv2d %x, %w {groups = 4 : i64} : (tensor<1x4x8x8xf32>, tensor<6x2x3x3xf32>) -> tensor<1x6x6x6xf32>
  func.return %y : tensor<1x6x6x6xf32>
}

// -----

func.func @conv_result(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32> {
  // CHECK: nn.conv2d: result shape [1, 4, 8, 8] does not match the shape [1, 4, 6, 6] computed from the operands and attributes
  %y = nn.conv2d %x, %w : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}

// -----

func.func @conv_bias(%x: tensor<1x3x8x8xf32>, %w: tensor<4x3x3x3xf32>, %b: tensor<3xf32>) -> tensor<1x4x6x6xf32> {
  // CHECK: nn.conv2d: bias shape [3] must be [4]
  %y = nn.conv2d %x, %w, %b : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<3xf32>) -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// -----

func.func @conv_transpose_output_padding(%x: tensor<1x2x4x4xf32>, %w: tensor<2x2x3x3xf32>) -> tensor<1x2x8x8xf32> {
  // CHECK: nn.conv_transpose2d: output_padding (2) must be >= 0 and smaller than stride or dilation
  %y = nn.conv_transpose2d %x, %w {stride = array<i64: 2, 2>, output_padding = array<i64: 2, 2>} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x8x8xf32>
  func.return %y : tensor<1x2x8x8xf32>
}

// -----

func.func @linear_features(%x: tensor<2x5xf32>, %w: tensor<3x4xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.linear: input features (5) must equal weight in-features (4)
  %y = nn.linear %x, %w : (tensor<2x5xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @matmul_contraction(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.matmul: contraction sizes differ: 3 (lhs [2, 3]) vs 2 (rhs [2, 3])
  %y = nn.matmul %a, %b : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @add_broadcast(%a: tensor<2x3xf32>, %b: tensor<4xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.add: shapes [2, 3] and [4] do not broadcast (axis -1 has sizes [3, 4])
  %y = nn.add %a, %b : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @element_types(%a: tensor<2x3xf32>, %b: tensor<2x3xf64>) -> tensor<2x3xf32> {
  // CHECK: nn.mul: operand and result element types differ (f32, f64)
  %y = nn.mul %a, %b : (tensor<2x3xf32>, tensor<2x3xf64>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @gelu_mode(%a: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.gelu: approximate must be "none" or "tanh", got "fast"
  %y = nn.gelu %a {approximate = "fast"} : tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @softmax_axis(%a: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.softmax: axis 2 is out of range for rank 2
  %y = nn.softmax %a {axis = 2 : i64} : tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @layer_norm_scale(%x: tensor<2x4x6xf32>, %s: tensor<4xf32>) -> tensor<2x4x6xf32> {
  // CHECK: nn.layer_norm: scale shape [4] must be the normalized shape [6]
  %y = nn.layer_norm %x, %s, %s : (tensor<2x4x6xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x6xf32>
  func.return %y : tensor<2x4x6xf32>
}

// -----

func.func @batch_norm_channels(%x: tensor<2x4x3x3xf32>, %c: tensor<3xf32>) -> tensor<2x4x3x3xf32> {
  // CHECK: nn.batch_norm: scale shape [3] must be [4] (the channel count)
  %y = nn.batch_norm %x, %c, %c, %c, %c : (tensor<2x4x3x3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<2x4x3x3xf32>
  func.return %y : tensor<2x4x3x3xf32>
}

// -----

func.func @group_norm_groups(%x: tensor<2x4x3x3xf32>, %c: tensor<4xf32>) -> tensor<2x4x3x3xf32> {
  // CHECK: nn.group_norm: groups (3) must divide the channel count (4)
  %y = nn.group_norm %x, %c, %c {groups = 3 : i64} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
  func.return %y : tensor<2x4x3x3xf32>
}

// -----

func.func @pool_padding(%x: tensor<1x1x8x8xf32>) -> tensor<1x1x5x5xf32> {
  // CHECK: nn.max_pool2d: padding [2, 2, 2, 2] must be at most half the kernel [2, 2]
  %y = nn.max_pool2d %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 2, 2, 2, 2>} : tensor<1x1x8x8xf32> -> tensor<1x1x5x5xf32>
  func.return %y : tensor<1x1x5x5xf32>
}

// -----

func.func @pool_window(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x1x1xf32> {
  // CHECK: nn.avg_pool2d: the window (kernel 3, dilation 1) is larger than the padded input (2 + 0 + 0)
  %y = nn.avg_pool2d %x {kernel = array<i64: 3, 3>} : tensor<1x1x2x2xf32> -> tensor<1x1x1x1xf32>
  func.return %y : tensor<1x1x1x1xf32>
}

// -----

func.func @reshape_count(%x: tensor<2x3xf32>) -> tensor<7xf32> {
  // CHECK: nn.reshape: cannot reshape [2, 3] (6 elements) into [7] (7 elements)
  %y = nn.reshape %x : tensor<2x3xf32> -> tensor<7xf32>
  func.return %y : tensor<7xf32>
}

// -----

func.func @transpose_perm(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  // CHECK: nn.transpose: permutation [1, 1] is not a permutation of the 2 axes
  %y = nn.transpose %x {perm = array<i64: 1, 1>} : tensor<2x3xf32> -> tensor<3x2xf32>
  func.return %y : tensor<3x2xf32>
}

// -----

func.func @concat_shapes(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) -> tensor<2x6xf32> {
  // CHECK: nn.concat: input 1 has shape [3, 3], which differs from [2, 3] outside axis 1
  %y = nn.concat %a, %b {axis = 1 : i64} : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x6xf32>
  func.return %y : tensor<2x6xf32>
}

// -----

func.func @slice_bounds(%x: tensor<4xf32>) -> tensor<2xf32> {
  // CHECK: nn.slice: bounds [3, 6) along axis 0 are outside the axis size 4
  %y = nn.slice %x {starts = array<i64: 3>, ends = array<i64: 6>, steps = array<i64: 1>} : tensor<4xf32> -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}

// -----

func.func @gather_range(%x: tensor<4x3xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.gather: indices [4] are outside [0, 4) (axis 0 of [4, 3])
  %y = nn.gather %x {axis = 0 : i64, indices = array<i64: 1, 4>} : tensor<4x3xf32> -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @gather_negative(%x: tensor<4x3xf32>) -> tensor<1x3xf32> {
  // CHECK: nn.gather: indices [-1] are outside [0, 4) (axis 0 of [4, 3])
  %y = nn.gather %x {axis = 0 : i64, indices = array<i64: -1>} : tensor<4x3xf32> -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}

// -----

func.func @gather_empty(%x: tensor<4x3xf32>) -> tensor<4x3xf32> {
  // CHECK: nn.gather: indices must not be empty
  %y = nn.gather %x {axis = 1 : i64, indices = array<i64>} : tensor<4x3xf32> -> tensor<4x3xf32>
  func.return %y : tensor<4x3xf32>
}

// -----

func.func @gather_axis(%x: tensor<4x3xf32>) -> tensor<4x3xf32> {
  // CHECK: nn.gather: axis -3 is out of range for rank 2
  %y = nn.gather %x {axis = -3 : i64, indices = array<i64: 0>} : tensor<4x3xf32> -> tensor<4x3xf32>
  func.return %y : tensor<4x3xf32>
}

// -----

func.func @gather_result(%x: tensor<4x3xf32>) -> tensor<2x3xf32> {
  // CHECK: nn.gather: result shape [2, 3] does not match the shape [4, 2] computed from the operands and attributes
  %y = nn.gather %x {axis = 1 : i64, indices = array<i64: 2, 2>} : tensor<4x3xf32> -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

// -----

func.func @gather_element_types(%x: tensor<4x3xf32>) -> tensor<1x3xi32> {
  // CHECK: nn.gather: operand and result element types differ (f32, i32)
  %y = nn.gather %x {axis = 0 : i64, indices = array<i64: 0>} : tensor<4x3xf32> -> tensor<1x3xi32>
  func.return %y : tensor<1x3xi32>
}

// -----

func.func @squeeze_size(%x: tensor<2x3xf32>) -> tensor<3xf32> {
  // CHECK: nn.squeeze: axis 0 has size 2, not 1
  %y = nn.squeeze %x {axes = array<i64: 0>} : tensor<2x3xf32> -> tensor<3xf32>
  func.return %y : tensor<3xf32>
}

// -----

func.func @reduce_axes(%x: tensor<2x3xf32>) -> tensor<2xf32> {
  // CHECK: nn.reduce_sum: axes [1, -1] repeat an axis
  %y = nn.reduce_sum %x {axes = array<i64: 1, -1>} : tensor<2x3xf32> -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}

// -----

func.func @load_missing() -> tensor<2xf32> {
  // CHECK: nn.load: no parameter named @w in the module
  %w = nn.load @w : tensor<2xf32>
  func.return %w : tensor<2xf32>
}

// -----

nn.param @w : tensor<3xf32>
func.func @load_type() -> tensor<2xf32> {
  // CHECK: nn.load: result type tensor<2xf32> does not match the type tensor<3xf32> of @w
  %w = nn.load @w : tensor<2xf32>
  func.return %w : tensor<2xf32>
}

// -----

// CHECK: nn.param @v: value type tensor<2xf32> does not match the declared type tensor<3xf32>
nn.param @v : tensor<3xf32> = dense<1.0> : tensor<2xf32>

// -----

func.func @pad_count(%x: tensor<3x2xf32>) -> tensor<4x2xf32> {
  // CHECK: nn.pad: pads must have two values per axis (4), got 2
  %y = nn.pad %x {pads = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<4x2xf32>
  func.return %y : tensor<4x2xf32>
}

// -----

func.func @pad_negative(%x: tensor<3x2xf32>) -> tensor<2x2xf32> {
  // CHECK: nn.pad: pads [-1, 0, 0, 0] must be >= 0
  %y = nn.pad %x {pads = array<i64: -1, 0, 0, 0>} : tensor<3x2xf32> -> tensor<2x2xf32>
  func.return %y : tensor<2x2xf32>
}

// -----

func.func @broadcast_shape(%x: tensor<3x2xf32>) -> tensor<3x4xf32> {
  // CHECK: nn.broadcast_to: [3, 2] does not broadcast to [3, 4]
  %y = nn.broadcast_to %x : tensor<3x2xf32> -> tensor<3x4xf32>
  func.return %y : tensor<3x4xf32>
}

// -----

func.func @attention_heads(%x: tensor<2x3x4xf32>, %w: tensor<4x4xf32>, %wv: tensor<4x6xf32>, %wo: tensor<6x5xf32>) -> tensor<2x3x5xf32> {
  // CHECK: nn.attention: heads (4) must divide the wv columns (6)
  %y = nn.attention %x, %w, %w, %wv, %wo {heads = 4 : i64, scale = 0.5 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x6xf32>, tensor<6x5xf32>) -> tensor<2x3x5xf32>
  func.return %y : tensor<2x3x5xf32>
}

// -----

func.func @attention_bias(%x: tensor<2x3x4xf32>, %w: tensor<4x4xf32>, %wo: tensor<4x5xf32>, %b: tensor<4xf32>) -> tensor<2x3x5xf32> {
  // CHECK: nn.attention: bo shape [4] must be [5]
  %y = nn.attention %x, %w, %w, %w, %wo bias(%b, %b, %b, %b) {heads = 2 : i64, scale = 0.5 : f32} : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x3x5xf32>
  func.return %y : tensor<2x3x5xf32>
}

// -----

func.func @attention_some_biases(%x: tensor<2x3x4xf32>, %w: tensor<4x4xf32>, %wo: tensor<4x5xf32>, %b: tensor<4xf32>) -> tensor<2x3x5xf32> {
  // CHECK: nn.attention: takes the four biases bq, bk, bv, bo or none
  %y = "nn.attention"(%x, %w, %w, %w, %wo, %b) <{heads = 2 : i64, scale = 5.000000e-01 : f32, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0>}> : (tensor<2x3x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x5xf32>, tensor<4xf32>) -> tensor<2x3x5xf32>
  func.return %y : tensor<2x3x5xf32>
}

// -----

func.func @dynamic_dimension(%x: tensor<?x2xf32>) -> tensor<?x2xf32> {
  // CHECK: nn.relu: operand 0 has type tensor<?x2xf32> with a dynamic dimension (?); edge-opt needs static shapes with every dimension at least 1
  %y = nn.relu %x : tensor<?x2xf32>
  func.return %y : tensor<?x2xf32>
}

// -----

func.func @empty_dimension(%x: tensor<0x2xf32>) -> tensor<0x2xf32> {
  // CHECK: nn.relu: operand 0 has type tensor<0x2xf32> with an empty dimension (0); edge-opt needs static shapes with every dimension at least 1
  %y = nn.relu %x : tensor<0x2xf32>
  func.return %y : tensor<0x2xf32>
}

// -----

// CHECK: nn.param: @w has type tensor<3x0xf32> with an empty dimension (0)
nn.param @w : tensor<3x0xf32>

// -----

func.func @constant_type() -> tensor<3xf32> {
  // CHECK: nn.constant: value type tensor<2xf32> does not match the result tensor<3xf32>
  %c = "nn.constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
  func.return %c : tensor<3xf32>
}
