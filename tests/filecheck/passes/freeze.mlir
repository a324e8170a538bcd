// freeze sets which parameters train, by whole-name regular expressions; it only changes
// the `trainable` flags.

// RUN: edge-opt %s -p 'freeze{trainable="fc_.*"}' | filecheck %s --check-prefix=TRAINABLE
// RUN: edge-opt %s -p 'freeze{frozen=".*_bias"}' | filecheck %s --check-prefix=FROZEN
// RUN: edge-opt %s -p 'freeze{trainable="conv_.*|fc_weight" frozen="conv_bias"}' | filecheck %s --check-prefix=BOTH
// RUN: not edge-opt %s -p 'freeze{trainable="conv"}' 2>&1 | filecheck %s --check-prefix=WHOLE

nn.param trainable @conv_weight : tensor<4x1x3x3xf32>
nn.param trainable @conv_bias : tensor<4xf32>
nn.param @fc_weight : tensor<3x64xf32>
nn.param @fc_bias : tensor<3xf32>

func.func @forward(%x: tensor<2x1x4x4xf32>) -> tensor<2x3xf32> {
  %wc = nn.load @conv_weight : tensor<4x1x3x3xf32>
  %bc = nn.load @conv_bias : tensor<4xf32>
  %c = nn.conv2d %x, %wc, %bc {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x1x4x4xf32>, tensor<4x1x3x3xf32>, tensor<4xf32>) -> tensor<2x4x4x4xf32>
  %flat = nn.reshape %c : tensor<2x4x4x4xf32> -> tensor<2x64xf32>
  %wf = nn.load @fc_weight : tensor<3x64xf32>
  %bf = nn.load @fc_bias : tensor<3xf32>
  %logits = nn.linear %flat, %wf, %bf : (tensor<2x64xf32>, tensor<3x64xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %logits : tensor<2x3xf32>
}

// `trainable`: exactly the matching parameters train.
// TRAINABLE:      nn.param @conv_weight : tensor<4x1x3x3xf32>
// TRAINABLE-NEXT: nn.param @conv_bias : tensor<4xf32>
// TRAINABLE-NEXT: nn.param trainable @fc_weight : tensor<3x64xf32>
// TRAINABLE-NEXT: nn.param trainable @fc_bias : tensor<3xf32>
// TRAINABLE-NEXT: func.func @forward
// TRAINABLE-NEXT:   %wc = nn.load @conv_weight : tensor<4x1x3x3xf32>

// `frozen`: the matching parameters stop training; the others keep their flag.
// FROZEN:      nn.param trainable @conv_weight : tensor<4x1x3x3xf32>
// FROZEN-NEXT: nn.param @conv_bias : tensor<4xf32>
// FROZEN-NEXT: nn.param @fc_weight : tensor<3x64xf32>
// FROZEN-NEXT: nn.param @fc_bias : tensor<3xf32>

// `frozen` applies after `trainable`.
// BOTH:      nn.param trainable @conv_weight : tensor<4x1x3x3xf32>
// BOTH-NEXT: nn.param @conv_bias : tensor<4xf32>
// BOTH-NEXT: nn.param trainable @fc_weight : tensor<3x64xf32>
// BOTH-NEXT: nn.param @fc_bias : tensor<3xf32>

// The pattern must match the whole name.
// WHOLE: edge-opt: error: pass failed: freeze: trainable='conv' matches no parameter (the model has 4: conv_weight, conv_bias, fc_weight, fc_bias)
