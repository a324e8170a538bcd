// batch-norm-to-group-norm{groups=G} replaces each nn.batch_norm by an nn.group_norm
// with the same scale, shift and epsilon; the running statistics are no longer read,
// so their loads and parameters go. One RUN line per interesting groups value: 1 (the
// default: one group, a layer norm over (C, H, W)), 2 (4 channels in 2 groups), 4 (one
// channel per group, an instance norm); 3 does not divide the 4 channels.

// RUN: edge-opt %s -p batch-norm-to-group-norm | filecheck %s --check-prefixes=CHECK,ONE
// RUN: edge-opt %s -p 'batch-norm-to-group-norm{groups=2}' | filecheck %s --check-prefixes=CHECK,TWO
// RUN: edge-opt %s -p 'batch-norm-to-group-norm{groups=4}' | filecheck %s --check-prefixes=CHECK,FOUR
// RUN: not edge-opt %s -p 'batch-norm-to-group-norm{groups=3}' 2>&1 | filecheck %s --check-prefix=DIVIDE
// RUN: not edge-opt %s -p 'batch-norm-to-group-norm{groups=0}' 2>&1 | filecheck %s --check-prefix=ZERO
// RUN: not edge-opt %s -p "autodiff{loss=mse},batch-norm-to-group-norm" 2>&1 | filecheck %s --check-prefix=TRAINED

// CHECK:       nn.param trainable @scale
// CHECK-NEXT:  nn.param trainable @shift
// CHECK-NOT:   nn.param @mean
// CHECK-NOT:   nn.param @var
// CHECK-LABEL: func.func @forward(
// CHECK:         %scale = nn.load @scale
// CHECK-NEXT:    %shift = nn.load @shift
// CHECK-NOT:     nn.load @mean
// ONE-NEXT:      %y = nn.group_norm %x, %scale, %shift {groups = 1 : i64, epsilon = 1.000000e-03 : f32}
// TWO-NEXT:      %y = nn.group_norm %x, %scale, %shift {groups = 2 : i64, epsilon = 1.000000e-03 : f32}
// FOUR-NEXT:     %y = nn.group_norm %x, %scale, %shift {groups = 4 : i64, epsilon = 1.000000e-03 : f32}
// CHECK-NOT:     nn.batch_norm
// CHECK:         func.return %y

// DIVIDE: edge-opt: error: pass failed: batch-norm-to-group-norm: nn.batch_norm %y has 4 channels, which groups=3 does not divide; choose a divisor of 4
// DIVIDE-NOT: Traceback
// ZERO: edge-opt: error: bad pipeline 'batch-norm-to-group-norm{groups=0}': batch-norm-to-group-norm: option groups=0 is invalid: it must be an integer >= 1
// TRAINED: edge-opt: error: pass failed: batch-norm-to-group-norm: the module already has a training step; replace batch norm before autodiff (or a training pipeline)

builtin.module {
  nn.param trainable @scale : tensor<4xf32> = dense<[1.0, 2.0, 0.5, 1.5]> : tensor<4xf32>
  nn.param trainable @shift : tensor<4xf32> = dense<[0.0, 0.1, 0.2, 0.3]> : tensor<4xf32>
  nn.param @mean : tensor<4xf32> = dense<0.5> : tensor<4xf32>
  nn.param @var : tensor<4xf32> = dense<2.0> : tensor<4xf32>
  func.func @forward(%x: tensor<2x4x3x3xf32>) -> tensor<2x4x3x3xf32> {
    %scale = nn.load @scale : tensor<4xf32>
    %shift = nn.load @shift : tensor<4xf32>
    %mean = nn.load @mean : tensor<4xf32>
    %var = nn.load @var : tensor<4xf32>
    %y = nn.batch_norm %x, %scale, %shift, %mean, %var {epsilon = 1.0e-3 : f64} : (tensor<2x4x3x3xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4x3x3xf32>
    func.return %y : tensor<2x4x3x3xf32>
  }
}
