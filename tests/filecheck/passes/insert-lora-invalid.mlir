// The preconditions of insert-lora: each broken one is one `edge-opt: error: pass failed:
// insert-lora: ...` line naming the problem.

// RUN: not edge-opt %s -p 'insert-lora{targets="fc"}' 2>&1 | filecheck %s --check-prefix=NOMATCH
// NOMATCH: edge-opt: error: pass failed: insert-lora: targets='fc' matches no weight of a linear layer; the model's linear-layer weights: fc_weight, proj
// NOMATCH-NOT: Traceback

// RUN: not edge-opt %s -p 'insert-lora{targets="fc_bias|conv_weight"}' 2>&1 | filecheck %s --check-prefix=NOTWEIGHT
// NOTWEIGHT: edge-opt: error: pass failed: insert-lora: targets='fc_bias|conv_weight' matches no weight of a linear layer (it matches 2 parameter(s), conv_weight, fc_bias, but none is the weight of an nn.linear or the right operand of a 2-D nn.matmul); the model's linear-layer weights: fc_weight, proj

// RUN: not edge-opt %s -p 'insert-lora{targets="proj"}' 2>&1 | filecheck %s --check-prefix=SHARED
// SHARED: edge-opt: error: pass failed: insert-lora: @proj is the weight of a linear layer but is also read by nn.reduce_sum (result %norm); its adapters would not apply there, so it cannot be adapted (exclude it from targets)

// RUN: not edge-opt %s -p 'insert-lora{targets="fc_(weight"}' 2>&1 | filecheck %s --check-prefix=REGEX
// REGEX: edge-opt: error: pass failed: insert-lora: targets='fc_(weight' is not a regular expression: missing ), unterminated subpattern at position 3

// RUN: not edge-opt %s -p 'insert-lora{rank=0 targets="fc_weight"}' 2>&1 | filecheck %s --check-prefix=RANK
// RANK: edge-opt: error: bad pipeline 'insert-lora{rank=0 targets="fc_weight"}': insert-lora: option rank=0 is invalid: it must be an integer >= 1

// RUN: not edge-opt %s -p 'insert-lora{targets="fc_weight"},insert-lora{targets="fc_weight"}' 2>&1 | filecheck %s --check-prefix=TWICE
// TWICE: edge-opt: error: pass failed: insert-lora: @fc_weight already has LoRA adapters; merge them (merge-lora) before adding new ones

// RUN: not edge-opt %s -p 'autodiff{function=head},insert-lora{targets="fc_weight"}' 2>&1 | filecheck %s --check-prefix=TRAINED
// TRAINED: edge-opt: error: pass failed: insert-lora: the module already has a training step (train.store); insert adapters before autodiff (train-lora does both)

nn.param trainable @conv_weight : tensor<2x1x3x3xf32>
nn.param trainable @fc_weight : tensor<3x8xf32>
nn.param trainable @fc_bias : tensor<3xf32>
nn.param trainable @proj : tensor<8x8xf32>

func.func @forward(%x: tensor<2x1x2x2xf32>) -> tensor<2x8xf32> {
  %wc = nn.load @conv_weight : tensor<2x1x3x3xf32>
  %c = nn.conv2d %x, %wc {padding = array<i64: 1, 1, 1, 1>} : (tensor<2x1x2x2xf32>, tensor<2x1x3x3xf32>) -> tensor<2x2x2x2xf32>
  %f = nn.reshape %c : tensor<2x2x2x2xf32> -> tensor<2x8xf32>
  %wp = nn.load @proj : tensor<8x8xf32>
  %p = nn.matmul %f, %wp : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
  %norm = nn.reduce_sum %wp {axes = array<i64: 0>, keepdims} : tensor<8x8xf32> -> tensor<1x8xf32>
  %y = nn.div %p, %norm : (tensor<2x8xf32>, tensor<1x8xf32>) -> tensor<2x8xf32>
  func.return %y : tensor<2x8xf32>
}

func.func @head(%x: tensor<2x8xf32>) -> tensor<2x3xf32> {
  %w = nn.load @fc_weight : tensor<3x8xf32>
  %b = nn.load @fc_bias : tensor<3xf32>
  %y = nn.linear %x, %w, %b : (tensor<2x8xf32>, tensor<3x8xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}
