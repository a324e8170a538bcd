// Rounding (nn.ceil, nn.floor, nn.round) has no gradient: autodiff refuses to train a
// parameter through it, with one line naming the op, and differentiates a model that
// rounds only values no trainable parameter affects.

// RUN: not edge-opt %s -p 'autodiff' 2>&1 | filecheck %s --check-prefix=THROUGH
// THROUGH: edge-opt: error: pass failed: autodiff: nn.round (result %r) has no gradient (it is piecewise constant), but a trainable parameter's gradient would have to flow through it; freeze the parameters it depends on (freeze{frozen=REGEX}, train-last, ...)
// THROUGH-NOT: Traceback

// RUN: edge-opt %s -p 'freeze{frozen="w0"},autodiff' | filecheck %s --check-prefix=FROZEN
// FROZEN-LABEL: func.func @train_step
// FROZEN:       %xr = nn.floor %x : tensor<2x4xf32>
// FROZEN:       %r = nn.round %h : tensor<2x3xf32>
// FROZEN:       train.linear_grad_weight
// FROZEN-NOT:   train.linear_grad_input
// FROZEN:       train.sgd
// FROZEN-NOT:   train.sgd
// FROZEN:       func.return %loss

nn.param trainable @w0 : tensor<3x4xf32>
nn.param trainable @w1 : tensor<3x3xf32>

func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %xr = nn.floor %x : tensor<2x4xf32>
  %w0 = nn.load @w0 : tensor<3x4xf32>
  %h = nn.linear %xr, %w0 : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
  %r = nn.round %h : tensor<2x3xf32>
  %w1 = nn.load @w1 : tensor<3x3xf32>
  %y = nn.linear %r, %w1 : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}
