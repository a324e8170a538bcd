// fold-batch-norm folds an inference-mode batch norm into the frozen convolution (or
// linear layer) before it: w * s and (b - mean) * s + bias with s = scale /
// sqrt(var + eps), as new frozen parameters; the old ones go. Here s = 2 / sqrt(4) = 1
// for channel 0 and 3 / sqrt(9) = 1 for channel 1 (eps = 0), so the weight keeps its
// values and the bias is (0.5 - 1) + 0.25 = -0.25 and (-0.5 - 2) + 1 = -1.5.
// Not folded: a trainable layer (whose batch norm keeps @scale ... @var alive; @w and
// @b go).

// RUN: edge-opt %s -p fold-batch-norm | filecheck %s

// CHECK-NOT:   nn.param @w :
// CHECK:       nn.param @w__bn_folded : tensor<2x1x1x1xf32> = dense<[{{\[}}{{\[}}[1.500000e+00]]], {{\[}}{{\[}}[-2.000000e+00]]]]> : tensor<2x1x1x1xf32>
// CHECK-NEXT:  nn.param @b__bn_folded : tensor<2xf32> = dense<[-2.500000e-01, -1.500000e+00]> : tensor<2xf32>
// CHECK-NEXT:  nn.param @scale
// CHECK-LABEL: func.func @forward(
// CHECK:         %w__bn_folded = nn.load @w__bn_folded
// CHECK-NEXT:    %b__bn_folded = nn.load @b__bn_folded
// CHECK-NEXT:    %y = nn.conv2d %x, %w__bn_folded, %b__bn_folded
// CHECK:         %ty = nn.batch_norm %tc,
builtin.module {
  nn.param @w : tensor<2x1x1x1xf32> = dense<[[[[1.5]]], [[[-2.0]]]]> : tensor<2x1x1x1xf32>
  nn.param @b : tensor<2xf32> = dense<[0.5, -0.5]> : tensor<2xf32>
  nn.param @scale : tensor<2xf32> = dense<[2.0, 3.0]> : tensor<2xf32>
  nn.param @shift : tensor<2xf32> = dense<[0.25, 1.0]> : tensor<2xf32>
  nn.param @mean : tensor<2xf32> = dense<[1.0, 2.0]> : tensor<2xf32>
  nn.param @var : tensor<2xf32> = dense<[4.0, 9.0]> : tensor<2xf32>
  nn.param trainable @tw : tensor<2x1x1x1xf32> = dense<1.0> : tensor<2x1x1x1xf32>
  func.func @forward(%x: tensor<1x1x2x2xf32>) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) {
    %w = nn.load @w : tensor<2x1x1x1xf32>
    %b = nn.load @b : tensor<2xf32>
    %scale = nn.load @scale : tensor<2xf32>
    %shift = nn.load @shift : tensor<2xf32>
    %mean = nn.load @mean : tensor<2xf32>
    %var = nn.load @var : tensor<2xf32>
    %c = nn.conv2d %x, %w, %b : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %y = nn.batch_norm %c, %scale, %shift, %mean, %var {epsilon = 0.0 : f64} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %tw = nn.load @tw : tensor<2x1x1x1xf32>
    %tc = nn.conv2d %x, %tw : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x2x2xf32>
    %ty = nn.batch_norm %tc, %scale, %shift, %mean, %var {epsilon = 0.0 : f64} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    func.return %y, %ty : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>
  }
}
