nn.param trainable @w : tensor<3x3xf32>
func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %w = nn.load @w : tensor<3x3xf32>
  %y = nn.linear %x, %w : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}
