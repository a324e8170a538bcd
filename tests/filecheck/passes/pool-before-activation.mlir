// pool-before-activation moves a non-decreasing activation (relu, clip, leaky_relu with
// alpha >= 0) after the max-pool that is its only user: the same numbers, and the
// activation (and what its gradient saves) on the pooled tensor.

// RUN: edge-opt %s -p pool-before-activation | filecheck %s

// CHECK-LABEL: func.func @relu(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
// CHECK-NEXT:    %p = nn.max_pool2d %x {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
// CHECK-NEXT:    %r = nn.relu %p : tensor<1x2x2x2xf32>
// CHECK-NEXT:    func.return %r : tensor<1x2x2x2xf32>
func.func @relu(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
  %r = nn.relu %x : tensor<1x2x4x4xf32>
  %p = nn.max_pool2d %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  func.return %p : tensor<1x2x2x2xf32>
}

// ReLU6 (a clip) with a padded pool: the pool's -inf padding never wins either way.
// CHECK-LABEL: func.func @relu6(
// CHECK-NEXT:    %p = nn.max_pool2d %x {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>}
// CHECK-NEXT:    %r = nn.clip %p {min = 0.000000e+00 : f64, max = 6.000000e+00 : f64} : tensor<1x2x2x2xf32>
func.func @relu6(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
  %r = nn.clip %x {min = 0.000000e+00 : f64, max = 6.000000e+00 : f64} : tensor<1x2x4x4xf32>
  %p = nn.max_pool2d %r {kernel = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  func.return %p : tensor<1x2x2x2xf32>
}

// Not moved: a leaky relu with a negative slope decreases; a relu with another user;
// an activation that is not monotone (tanh is, but is not on the list: float tanh is
// not guaranteed monotone).
// CHECK-LABEL: func.func @kept(
// CHECK-NEXT:    %l = nn.leaky_relu %x {alpha = -5.000000e-01 : f64}
// CHECK-NEXT:    %lp = nn.max_pool2d %l
// CHECK-NEXT:    %r = nn.relu %x
// CHECK-NEXT:    %rp = nn.max_pool2d %r
// CHECK-NEXT:    %t = nn.tanh %x
// CHECK-NEXT:    %tp = nn.max_pool2d %t
func.func @kept(%x: tensor<1x2x4x4xf32>) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x4x4xf32>, tensor<1x2x2x2xf32>) {
  %l = nn.leaky_relu %x {alpha = -5.000000e-01 : f64} : tensor<1x2x4x4xf32>
  %lp = nn.max_pool2d %l {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  %r = nn.relu %x : tensor<1x2x4x4xf32>
  %rp = nn.max_pool2d %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  %t = nn.tanh %x : tensor<1x2x4x4xf32>
  %tp = nn.max_pool2d %t {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  func.return %lp, %rp, %r, %tp : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>, tensor<1x2x4x4xf32>, tensor<1x2x2x2xf32>
}
