// recompute{segments=true}: a value is recomputed with the forward ops it needs, back to
// values live anyway at its first backward use. Here the first hidden layer's output
// t1, which the second layer's weight gradient and the first tanh's gradient read at
// the end of the backward, is recomputed from the step's input x (a linear and a tanh:
// only with expensive=true); cheap ops alone lower nothing, and the module is unchanged
// but for the record.

// RUN: edge-opt %s -p 'train-full{loss=mse},recompute{segments=true expensive=true max-extra-flops=0.5}' | filecheck %s
// RUN: edge-opt %s -p 'train-full{loss=mse},recompute{segments=true}' | filecheck %s --check-prefix=CHEAP
// RUN: edge-opt %s -p 'train-full{loss=mse},recompute{segments=true expensive=true max-extra-flops=0.01}' | filecheck %s --check-prefix=BUDGET

// CHECK:       builtin.module attributes {edge_opt.memory_passes = [{pass = "recompute", function = "train_step", peak_before = 278532 : i64, peak_after = 212996 : i64, extra_flops = 540672 : i64, search = "segments"}]} {
// CHECK-LABEL: func.func @train_step(
// CHECK:         %h1 = nn.linear %x, %w1
// CHECK-NEXT:    %t1 = nn.tanh %h1
// CHECK:         train.store %w3_new, @w3
// CHECK:         %d_t1 = train.linear_grad_input %d_h2, %w2
// CHECK-NEXT:    %h1_again = nn.linear %x, %w1
// CHECK-NEXT:    %t1_again = nn.tanh %h1_again
// CHECK-NEXT:    %d_w2 = train.linear_grad_weight %d_h2, %t1_again
// CHECK:         %d_h1 = train.tanh_grad %d_t1, %t1_again
// CHECK:         train.store %w1_new, @w1

// CHEAP:       peak_before = 278532 : i64, peak_after = 278532 : i64, extra_flops = 0 : i64, search = "segments"
// CHEAP-NOT:   _again

// BUDGET:      peak_after = 278532 : i64, extra_flops = 0 : i64, search = "segments"
// BUDGET-NOT:  _again

builtin.module {
  nn.param trainable @w1 : tensor<64x16xf32> = dense<0.1> : tensor<64x16xf32>
  nn.param trainable @w2 : tensor<64x64xf32> = dense<0.01> : tensor<64x64xf32>
  nn.param trainable @w3 : tensor<64x64xf32> = dense<0.02> : tensor<64x64xf32>
  nn.param trainable @w4 : tensor<4x64xf32> = dense<0.3> : tensor<4x64xf32>
  func.func @forward(%x: tensor<256x16xf32>) -> tensor<256x4xf32> {
    %w1 = nn.load @w1 : tensor<64x16xf32>
    %w2 = nn.load @w2 : tensor<64x64xf32>
    %w3 = nn.load @w3 : tensor<64x64xf32>
    %w4 = nn.load @w4 : tensor<4x64xf32>
    %h1 = nn.linear %x, %w1 : (tensor<256x16xf32>, tensor<64x16xf32>) -> tensor<256x64xf32>
    %t1 = nn.tanh %h1 : tensor<256x64xf32>
    %h2 = nn.linear %t1, %w2 : (tensor<256x64xf32>, tensor<64x64xf32>) -> tensor<256x64xf32>
    %t2 = nn.tanh %h2 : tensor<256x64xf32>
    %h3 = nn.linear %t2, %w3 : (tensor<256x64xf32>, tensor<64x64xf32>) -> tensor<256x64xf32>
    %t3 = nn.tanh %h3 : tensor<256x64xf32>
    %y = nn.linear %t3, %w4 : (tensor<256x64xf32>, tensor<4x64xf32>) -> tensor<256x4xf32>
    func.return %y : tensor<256x4xf32>
  }
}
