// The rules pass with the rule file inputs/rules/identities.rules: double negation and
// relu(relu) fold, mul by a splat 1 folds, log(softmax) becomes log_softmax with the
// same axis, and the bias add folds into the linear layer; dead ops are removed.
// The second function shows where the rules must not fire.

// RUN: edge-opt %s -p 'rules{file=%inputs/rules/identities.rules}' | filecheck %s

nn.param trainable @w : tensor<3x4xf32>
nn.param trainable @b : tensor<3xf32>
nn.param trainable @c : tensor<3xf32>

// CHECK-LABEL: func.func @forward
// CHECK-SAME:    (%[[X:.*]]: tensor<2x4xf32>)
// CHECK-NEXT:    %[[R:.*]] = nn.relu %[[X]] : tensor<2x4xf32>
// CHECK-NEXT:    %[[S:.*]] = nn.log_softmax %[[R]] {axis = 0 : i64} : tensor<2x4xf32>
// CHECK-NEXT:    %[[W:.*]] = nn.load @w : tensor<3x4xf32>
// CHECK-NEXT:    %[[B:.*]] = nn.load @b : tensor<3xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.linear %[[S]], %[[W]], %[[B]] : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    func.return %[[Y]] : tensor<2x3xf32>
func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %0 = nn.neg %x : tensor<2x4xf32>
  %1 = nn.neg %0 : tensor<2x4xf32>
  %2 = nn.relu %1 : tensor<2x4xf32>
  %3 = nn.relu %2 : tensor<2x4xf32>
  %one = nn.constant dense<1.000000e+00> : tensor<2x4xf32>
  %4 = nn.mul %3, %one : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %5 = nn.softmax %4 {axis = 0 : i64} : tensor<2x4xf32>
  %6 = nn.log %5 : tensor<2x4xf32>
  %w = nn.load @w : tensor<3x4xf32>
  %b = nn.load @b : tensor<3xf32>
  %7 = nn.linear %6, %w : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
  %8 = nn.add %7, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %8 : tensor<2x3xf32>
}

// Not rewritten: mul by 2 (not 1); mul by a 1 that broadcasts x to a larger type (the
// replacement x would have another type); a bias that is a constant, not a parameter;
// a linear layer that already has a bias.
// CHECK-LABEL: func.func @unchanged
// CHECK:         nn.mul
// CHECK:         nn.mul
// CHECK:         nn.add
// CHECK:         nn.linear %{{.*}}, %{{.*}}, %{{.*}} :
// CHECK-NEXT:    nn.add
// CHECK-NEXT:    func.return
func.func @unchanged(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>, tensor<2x4xf32>, tensor<1x3xf32>, tensor<1x3xf32>) {
  %two = nn.constant dense<2.000000e+00> : tensor<1x4xf32>
  %0 = nn.mul %x, %two : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %one = nn.constant dense<1.000000e+00> : tensor<2x4xf32>
  %1 = nn.mul %x, %one : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %w = nn.load @w : tensor<3x4xf32>
  %k = nn.constant dense<5.000000e-01> : tensor<3xf32>
  %2 = nn.linear %x, %w : (tensor<1x4xf32>, tensor<3x4xf32>) -> tensor<1x3xf32>
  %3 = nn.add %2, %k : (tensor<1x3xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  %b = nn.load @b : tensor<3xf32>
  %c = nn.load @c : tensor<3xf32>
  %4 = nn.linear %x, %w, %c : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  %5 = nn.add %4, %b : (tensor<1x3xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  func.return %0, %1, %3, %5 : tensor<1x4xf32>, tensor<2x4xf32>, tensor<1x3xf32>, tensor<1x3xf32>
}
