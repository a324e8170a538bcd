func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %y = nn.relu %x : tensor<2x3xf32>
  %z = nn.frobnicate %y : tensor<2x3xf32>
  func.return %z : tensor<2x3xf32>
}
