// recompute: the layer norm's output, which the first layer's weight gradient reads at
// the end of the backward, is recomputed there from the step's input (kept anyway)
// instead of living through the backward: the peak of live bytes drops, for the
// layer norm's FLOPs.

// RUN: edge-opt %s -p 'train-full{loss=mse},recompute' | filecheck %s

// CHECK:       builtin.module attributes {edge_opt.memory_passes = [{pass = "recompute", function = "train_step", peak_before = 69892 : i64, peak_after = 53508 : i64, extra_flops = 28672 : i64, search = "greedy"}]} {
// CHECK-LABEL: func.func @train_step(
// CHECK:         %n = nn.layer_norm %x, %g, %b
// CHECK:         %d_w2 = train.linear_grad_weight %d_h2, %r1
// CHECK:         %n_again = nn.layer_norm %x, %g, %b
// CHECK-NEXT:    %d_w1 = train.linear_grad_weight %d_h1, %n_again

builtin.module {
  nn.param trainable @g : tensor<16xf32> = dense<1.0> : tensor<16xf32>
  nn.param trainable @b : tensor<16xf32> = dense<0.0> : tensor<16xf32>
  nn.param trainable @w1 : tensor<16x16xf32> = dense<0.1> : tensor<16x16xf32>
  nn.param trainable @w2 : tensor<16x16xf32> = dense<0.2> : tensor<16x16xf32>
  nn.param trainable @w3 : tensor<4x16xf32> = dense<0.3> : tensor<4x16xf32>
  func.func @forward(%x: tensor<256x16xf32>) -> tensor<256x4xf32> {
    %g = nn.load @g : tensor<16xf32>
    %b = nn.load @b : tensor<16xf32>
    %w1 = nn.load @w1 : tensor<16x16xf32>
    %w2 = nn.load @w2 : tensor<16x16xf32>
    %w3 = nn.load @w3 : tensor<4x16xf32>
    %n = nn.layer_norm %x, %g, %b : (tensor<256x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<256x16xf32>
    %h1 = nn.linear %n, %w1 : (tensor<256x16xf32>, tensor<16x16xf32>) -> tensor<256x16xf32>
    %r1 = nn.relu %h1 : tensor<256x16xf32>
    %h2 = nn.linear %r1, %w2 : (tensor<256x16xf32>, tensor<16x16xf32>) -> tensor<256x16xf32>
    %r2 = nn.relu %h2 : tensor<256x16xf32>
    %y = nn.linear %r2, %w3 : (tensor<256x16xf32>, tensor<4x16xf32>) -> tensor<256x4xf32>
    func.return %y : tensor<256x4xf32>
  }
}
