// fold-batch-norm folds two batch norms in a row into the frozen convolution before
// them: the second reads the parameters the first fold declared (a fuzz campaign found
// this failing with a KeyError). Each fold here halves the weight (scale 1, var 4,
// eps 0) and moves the bias by (b - 1) / 2 + 0.5: 2.0 -> 1.0 -> 0.5 and 3.0 -> 1.5 ->
// 0.75. The intermediate parameters go.

// RUN: edge-opt %s -p fold-batch-norm | filecheck %s

// CHECK-NOT:   nn.param @w__bn_folded :
// CHECK:       nn.param @w__bn_folded__bn_folded : tensor<1x1x1x1xf32> = dense<5.000000e-01> : tensor<1x1x1x1xf32>
// CHECK-NEXT:  nn.param @b__bn_folded__bn_folded : tensor<1xf32> = dense<7.500000e-01> : tensor<1xf32>
// CHECK-NOT:   nn.param @w__bn_folded :
// CHECK-LABEL: func.func @forward(
// CHECK-NOT:     nn.batch_norm
// CHECK:         nn.conv2d %x, %w__bn_folded__bn_folded, %b__bn_folded__bn_folded
// CHECK-NOT:     nn.batch_norm
builtin.module {
  nn.param @w : tensor<1x1x1x1xf32> = dense<2.0> : tensor<1x1x1x1xf32>
  nn.param @b : tensor<1xf32> = dense<3.0> : tensor<1xf32>
  nn.param @one : tensor<1xf32> = dense<1.0> : tensor<1xf32>
  nn.param @half : tensor<1xf32> = dense<0.5> : tensor<1xf32>
  nn.param @four : tensor<1xf32> = dense<4.0> : tensor<1xf32>
  func.func @forward(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
    %w = nn.load @w : tensor<1x1x1x1xf32>
    %b = nn.load @b : tensor<1xf32>
    %one = nn.load @one : tensor<1xf32>
    %half = nn.load @half : tensor<1xf32>
    %four = nn.load @four : tensor<1xf32>
    %c = nn.conv2d %x, %w, %b : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    %y1 = nn.batch_norm %c, %one, %half, %one, %four {epsilon = 0.0 : f64} : (tensor<1x1x2x2xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    %y2 = nn.batch_norm %y1, %one, %half, %one, %four {epsilon = 0.0 : f64} : (tensor<1x1x2x2xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    func.return %y2 : tensor<1x1x2x2xf32>
  }
}
