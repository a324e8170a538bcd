// select-last-layers keeps training only the last k parametrised layers; every other
// parameter is frozen. A MatMul followed by the Add of its bias (as ONNX exporters write a
// linear layer) is one layer, and layers without a trainable parameter do not count.

// RUN: edge-opt %s -p 'select-last-layers' | filecheck %s --check-prefix=ONE
// RUN: edge-opt %s -p 'select-last-layers{layers=2}' | filecheck %s --check-prefix=TWO
// RUN: edge-opt %s -p 'select-last-layers{layers=3}' | filecheck %s --check-prefix=THREE

nn.param trainable @conv1_weight : tensor<4x1x3x3xf32>
nn.param trainable @bn_scale : tensor<4xf32>
nn.param trainable @bn_bias : tensor<4xf32>
nn.param @bn_mean : tensor<4xf32>
nn.param @bn_var : tensor<4xf32>
nn.param @conv2_weight : tensor<4x4x3x3xf32>
nn.param trainable @fc_weight : tensor<64x3xf32>
nn.param trainable @fc_bias : tensor<3xf32>

func.func @forward(%x: tensor<2x1x4x4xf32>) -> tensor<2x3xf32> {
  %w1 = nn.load @conv1_weight : tensor<4x1x3x3xf32>
  %c1 = nn.conv2d %x, %w1 {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x1x4x4xf32>, tensor<4x1x3x3xf32>) -> tensor<2x4x4x4xf32>
  %g = nn.load @bn_scale : tensor<4xf32>
  %b = nn.load @bn_bias : tensor<4xf32>
  %m = nn.load @bn_mean : tensor<4xf32>
  %v = nn.load @bn_var : tensor<4xf32>
  %n = nn.batch_norm %c1, %g, %b, %m, %v : (tensor<2x4x4x4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x4x4xf32>
  %w2 = nn.load @conv2_weight : tensor<4x4x3x3xf32>
  %c2 = nn.conv2d %n, %w2 {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x4x4x4xf32>, tensor<4x4x3x3xf32>) -> tensor<2x4x4x4xf32>
  %flat = nn.reshape %c2 : tensor<2x4x4x4xf32> -> tensor<2x64xf32>
  %wf = nn.load @fc_weight : tensor<64x3xf32>
  %mm = nn.matmul %flat, %wf : (tensor<2x64xf32>, tensor<64x3xf32>) -> tensor<2x3xf32>
  %bf = nn.load @fc_bias : tensor<3xf32>
  %logits = nn.add %mm, %bf : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %logits : tensor<2x3xf32>
}

// The last layer is the matmul with its bias add.
// ONE:      nn.param @conv1_weight : tensor<4x1x3x3xf32>
// ONE-NEXT: nn.param @bn_scale : tensor<4xf32>
// ONE-NEXT: nn.param @bn_bias : tensor<4xf32>
// ONE-NEXT: nn.param @bn_mean : tensor<4xf32>
// ONE-NEXT: nn.param @bn_var : tensor<4xf32>
// ONE-NEXT: nn.param @conv2_weight : tensor<4x4x3x3xf32>
// ONE-NEXT: nn.param trainable @fc_weight : tensor<64x3xf32>
// ONE-NEXT: nn.param trainable @fc_bias : tensor<3xf32>

// The frozen conv2 does not count: the second layer is the batch norm, whose running
// statistics stay frozen.
// TWO:      nn.param @conv1_weight : tensor<4x1x3x3xf32>
// TWO-NEXT: nn.param trainable @bn_scale : tensor<4xf32>
// TWO-NEXT: nn.param trainable @bn_bias : tensor<4xf32>
// TWO-NEXT: nn.param @bn_mean : tensor<4xf32>
// TWO-NEXT: nn.param @bn_var : tensor<4xf32>
// TWO-NEXT: nn.param @conv2_weight : tensor<4x4x3x3xf32>
// TWO-NEXT: nn.param trainable @fc_weight : tensor<64x3xf32>
// TWO-NEXT: nn.param trainable @fc_bias : tensor<3xf32>

// THREE:      nn.param trainable @conv1_weight : tensor<4x1x3x3xf32>
// THREE-NEXT: nn.param trainable @bn_scale : tensor<4xf32>
// THREE-NEXT: nn.param trainable @bn_bias : tensor<4xf32>
// THREE-NEXT: nn.param @bn_mean : tensor<4xf32>
// THREE-NEXT: nn.param @bn_var : tensor<4xf32>
// THREE-NEXT: nn.param @conv2_weight : tensor<4x4x3x3xf32>
// THREE-NEXT: nn.param trainable @fc_weight : tensor<64x3xf32>
// THREE-NEXT: nn.param trainable @fc_bias : tensor<3xf32>
