// The preconditions of autodiff, freeze and select-last-layers: each broken one is one
// `edge-opt: error: pass failed: ...` line naming the problem, exit status 1, no
// traceback.

// RUN: not edge-opt %s -p 'freeze{frozen=".*"},autodiff' 2>&1 | filecheck %s --check-prefix=NONE
// NONE: edge-opt: error: pass failed: autodiff: no parameter is trainable; mark some `trainable` or use a training pipeline (freeze{trainable=REGEX}, train-last, ...)
// NONE-NOT: Traceback

// RUN: not edge-opt %s -p 'autodiff{function=vector}' 2>&1 | filecheck %s --check-prefix=RANK
// RANK: edge-opt: error: pass failed: autodiff: loss=cross-entropy needs @vector to return (batch, classes) logits, but it returns tensor<3xf32>; use loss=mse or reshape the output
// RANK-NOT: Traceback

// RUN: not edge-opt %s -p 'autodiff{function=missing}' 2>&1 | filecheck %s --check-prefix=FUNCTION
// FUNCTION: edge-opt: error: pass failed: autodiff: the module has no function @missing

// RUN: not edge-opt %s -p 'autodiff,autodiff' 2>&1 | filecheck %s --check-prefix=TWICE
// TWICE: edge-opt: error: pass failed: autodiff: the module already has @train_step; run autodiff once
// TWICE-NOT: Traceback

// RUN: not edge-opt %s -p 'freeze{trainable="nomatch"}' 2>&1 | filecheck %s --check-prefix=NOMATCH
// NOMATCH: edge-opt: error: pass failed: freeze: trainable='nomatch' matches no parameter (the model has 2: fc_weight, fc_bias)
// NOMATCH-NOT: Traceback

// RUN: not edge-opt %s -p 'freeze{frozen="fc_(weight"}' 2>&1 | filecheck %s --check-prefix=REGEX
// REGEX: edge-opt: error: pass failed: freeze: frozen='fc_(weight' is not a regular expression: missing ), unterminated subpattern at position 3
// REGEX-NOT: Traceback

// RUN: not edge-opt %s -p 'select-last-layers{layers=99}' 2>&1 | filecheck %s --check-prefix=LAYERS
// LAYERS: edge-opt: error: pass failed: select-last-layers: layers=99, but @forward has only 1 layer(s) with trainable parameters
// LAYERS-NOT: Traceback

// RUN: not edge-opt %s -p 'select-last-layers{layers=0}' 2>&1 | filecheck %s --check-prefix=ZERO
// ZERO: edge-opt: error: bad pipeline 'select-last-layers{layers=0}': select-last-layers: option layers=0 is invalid: it must be an integer >= 1

// RUN: not edge-opt %s -p 'train-last{layers=2}' 2>&1 | filecheck %s --check-prefix=PIPELINE
// PIPELINE: edge-opt: error: pass failed: select-last-layers: layers=2, but @forward has only 1 layer(s) with trainable parameters

nn.param trainable @fc_weight : tensor<3x4xf32>
nn.param trainable @fc_bias : tensor<3xf32>

func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = nn.load @fc_weight : tensor<3x4xf32>
  %b = nn.load @fc_bias : tensor<3xf32>
  %y = nn.linear %x, %w, %b : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}

func.func @vector(%x: tensor<4xf32>) -> tensor<3xf32> {
  %w = nn.load @fc_weight : tensor<3x4xf32>
  %y = nn.linear %x, %w : (tensor<4xf32>, tensor<3x4xf32>) -> tensor<3xf32>
  func.return %y : tensor<3xf32>
}
