// Pass and pipeline options: exponent notation parses; out-of-range, nonsense and
// repeated values are errors that name the pass, the option and the rule.

// RUN: edge-opt %s --pipeline 'train-full{lr=1e-3 epsilon=1e-6 optimizer=adam}' | filecheck %s --check-prefix=EXP
// EXP: train.adam {{.*}}{lr = 1.000000e-03 : f32, epsilon = 1.000000e-06 : f32}

// RUN: not edge-opt %s --pipeline 'train-full{lr=-1}' 2>&1 | filecheck %s --check-prefix=LR
// LR: edge-opt: error: bad pipeline 'train-full{lr=-1}': train-full: option lr=-1.0 is invalid: it must be a finite number > 0

// RUN: not edge-opt %s --pipeline 'train-full{momentum=2}' 2>&1 | filecheck %s --check-prefix=MOMENTUM
// MOMENTUM: train-full: option momentum=2.0 is invalid: it must be a number in [0, 1)

// RUN: not edge-opt %s --pipeline 'train-full{optimizer=adam beta1=1.5}' 2>&1 | filecheck %s --check-prefix=BETA
// BETA: train-full: option beta1=1.5 is invalid: it must be a number in [0, 1)

// RUN: not edge-opt %s -p 'autodiff{epsilon=0}' 2>&1 | filecheck %s --check-prefix=EPSILON
// EPSILON: autodiff: option epsilon=0.0 is invalid: it must be a finite number > 0

// RUN: not edge-opt %s --pipeline 'train-lora{alpha=0}' 2>&1 | filecheck %s --check-prefix=ALPHA
// ALPHA: train-lora: option alpha=0.0 is invalid: it must be a finite number > 0

// RUN: not edge-opt %s -p 'plan-memory{alignment=0}' 2>&1 | filecheck %s --check-prefix=ALIGN0
// ALIGN0: plan-memory: option alignment=0 is invalid: it must be a power of two >= 1

// RUN: not edge-opt %s -p 'plan-memory{alignment=12}' 2>&1 | filecheck %s --check-prefix=ALIGN12
// ALIGN12: plan-memory: option alignment=12 is invalid: it must be a power of two >= 1

// RUN: not edge-opt %s --pipeline 'train-full{lr=0.1 lr=0.2}' 2>&1 | filecheck %s --check-prefix=REPEATED
// REPEATED: edge-opt: error: bad pipeline 'train-full{lr=0.1 lr=0.2}': option 'lr' of 'train-full' is given more than once

// RUN: not edge-opt %s --pipeline 'train-sparse{budget-kib=8 budget_kib=16}' 2>&1 | filecheck %s --check-prefix=SPELLINGS
// SPELLINGS: option 'budget_kib' of 'train-sparse' is given more than once

// RUN: not edge-opt %s --pipeline 'freeze{trainable=w}' 2>&1 | filecheck %s --check-prefix=PASS
// PASS: edge-opt: error: bad pipeline 'freeze{trainable=w}': freeze is a pass, not a named pipeline: give it with -p

nn.param trainable @w : tensor<3x4xf32> = dense<0.5> : tensor<3x4xf32>

func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %w = nn.load @w : tensor<3x4xf32>
  %y = nn.linear %x, %w : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
  func.return %y : tensor<2x3xf32>
}
