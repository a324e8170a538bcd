// raise-layer-norm fuses the element-wise form of a layer normalization that ONNX
// exporters before opset 17 write (mean, centre, square, mean, add eps, sqrt, divide,
// then optionally times a scale and plus a bias) into one nn.layer_norm; the leftovers
// are erased. Near misses (another exponent, axes that are not trailing) stay as they are.

// RUN: edge-opt %s -p raise-layer-norm | filecheck %s

// The default axis (-1) and epsilon (1e-5) are not printed.
// CHECK-LABEL: func.func @affine(%x: tensor<2x3x4xf32>, %g: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<2x3x4xf32> {
// CHECK-NEXT:    %y = nn.layer_norm %x, %g, %b : (tensor<2x3x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    func.return %y : tensor<2x3x4xf32>
// CHECK-NEXT:  }
func.func @affine(%x: tensor<2x3x4xf32>, %g: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<2x3x4xf32> {
  %two = nn.constant dense<2.0> : tensor<f32>
  %eps = nn.constant dense<1.0e-5> : tensor<f32>
  %mean = nn.reduce_mean %x {axes = array<i64: -1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x3x1xf32>
  %d = nn.sub %x, %mean : (tensor<2x3x4xf32>, tensor<2x3x1xf32>) -> tensor<2x3x4xf32>
  %sq = nn.pow %d, %two : (tensor<2x3x4xf32>, tensor<f32>) -> tensor<2x3x4xf32>
  %var = nn.reduce_mean %sq {axes = array<i64: -1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x3x1xf32>
  %ve = nn.add %var, %eps : (tensor<2x3x1xf32>, tensor<f32>) -> tensor<2x3x1xf32>
  %std = nn.sqrt %ve : tensor<2x3x1xf32>
  %n = nn.div %d, %std : (tensor<2x3x4xf32>, tensor<2x3x1xf32>) -> tensor<2x3x4xf32>
  %s = nn.mul %n, %g : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %y = nn.add %s, %b : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  func.return %y : tensor<2x3x4xf32>
}

// Over the last two axes, epsilon first in the add, no scale or bias (ones and zeros).
// CHECK-LABEL: func.func @plain(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
// CHECK-NEXT:    %n_scale = nn.constant dense<1.000000e+00> : tensor<3x4xf32>
// CHECK-NEXT:    %n_bias = nn.constant dense<0.000000e+00> : tensor<3x4xf32>
// CHECK-NEXT:    %n = nn.layer_norm %x, %n_scale, %n_bias {axis = -2 : i64, epsilon = 1.000000e-03 : f32} : (tensor<2x3x4xf32>, tensor<3x4xf32>, tensor<3x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    func.return %n : tensor<2x3x4xf32>
// CHECK-NEXT:  }
func.func @plain(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %two = nn.constant dense<2.0> : tensor<f32>
  %eps = nn.constant dense<1.0e-3> : tensor<f32>
  %mean = nn.reduce_mean %x {axes = array<i64: 1, 2>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x1xf32>
  %d = nn.sub %x, %mean : (tensor<2x3x4xf32>, tensor<2x1x1xf32>) -> tensor<2x3x4xf32>
  %sq = nn.pow %d, %two : (tensor<2x3x4xf32>, tensor<f32>) -> tensor<2x3x4xf32>
  %var = nn.reduce_mean %sq {axes = array<i64: -2, -1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x1xf32>
  %ve = nn.add %eps, %var : (tensor<f32>, tensor<2x1x1xf32>) -> tensor<2x1x1xf32>
  %std = nn.sqrt %ve : tensor<2x1x1xf32>
  %n = nn.div %d, %std : (tensor<2x3x4xf32>, tensor<2x1x1xf32>) -> tensor<2x3x4xf32>
  func.return %n : tensor<2x3x4xf32>
}

// Exponent 3 is not a variance.
// CHECK-LABEL: func.func @cube
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.pow
// CHECK:         nn.sqrt
// CHECK:         func.return
func.func @cube(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %three = nn.constant dense<3.0> : tensor<f32>
  %eps = nn.constant dense<1.0e-5> : tensor<f32>
  %mean = nn.reduce_mean %x {axes = array<i64: 1>, keepdims} : tensor<2x4xf32> -> tensor<2x1xf32>
  %d = nn.sub %x, %mean : (tensor<2x4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  %sq = nn.pow %d, %three : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %var = nn.reduce_mean %sq {axes = array<i64: 1>, keepdims} : tensor<2x4xf32> -> tensor<2x1xf32>
  %ve = nn.add %var, %eps : (tensor<2x1xf32>, tensor<f32>) -> tensor<2x1xf32>
  %std = nn.sqrt %ve : tensor<2x1xf32>
  %n = nn.div %d, %std : (tensor<2x4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  func.return %n : tensor<2x4xf32>
}

// Normalizing over a middle axis is not a layer norm (nn.layer_norm covers trailing axes).
// CHECK-LABEL: func.func @middle_axis
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.reduce_mean %x {axes = array<i64: 1>, keepdims}
// CHECK:         func.return
func.func @middle_axis(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %two = nn.constant dense<2.0> : tensor<f32>
  %eps = nn.constant dense<1.0e-5> : tensor<f32>
  %mean = nn.reduce_mean %x {axes = array<i64: 1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x4xf32>
  %d = nn.sub %x, %mean : (tensor<2x3x4xf32>, tensor<2x1x4xf32>) -> tensor<2x3x4xf32>
  %sq = nn.pow %d, %two : (tensor<2x3x4xf32>, tensor<f32>) -> tensor<2x3x4xf32>
  %var = nn.reduce_mean %sq {axes = array<i64: 1>, keepdims} : tensor<2x3x4xf32> -> tensor<2x1x4xf32>
  %ve = nn.add %var, %eps : (tensor<2x1x4xf32>, tensor<f32>) -> tensor<2x1x4xf32>
  %std = nn.sqrt %ve : tensor<2x1x4xf32>
  %n = nn.div %d, %std : (tensor<2x3x4xf32>, tensor<2x1x4xf32>) -> tensor<2x3x4xf32>
  func.return %n : tensor<2x3x4xf32>
}
