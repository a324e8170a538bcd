// A small image classifier: two convolutions, batch norm, pooling and a linear head.
// Input: a batch of 4 single-channel 12x12 images; output: 10 class logits each.
// Parameter values live in tiny_cnn.npz (regenerate with examples/make_examples.py).
builtin.module {
  nn.param trainable @conv1_weight : tensor<4x1x3x3xf32>
  nn.param trainable @conv1_bias : tensor<4xf32>
  nn.param trainable @bn1_scale : tensor<4xf32>
  nn.param trainable @bn1_bias : tensor<4xf32>
  nn.param @bn1_mean : tensor<4xf32>
  nn.param @bn1_var : tensor<4xf32>
  nn.param trainable @conv2_weight : tensor<8x4x3x3xf32>
  nn.param trainable @conv2_bias : tensor<8xf32>
  nn.param trainable @fc_weight : tensor<10x8xf32>
  nn.param trainable @fc_bias : tensor<10xf32>
  func.func @forward(%image: tensor<4x1x12x12xf32> {nn.name = "image"}) -> (tensor<4x10xf32> {nn.name = "logits"}) {
    %w1 = nn.load @conv1_weight : tensor<4x1x3x3xf32>
    %b1 = nn.load @conv1_bias : tensor<4xf32>
    %c1 = nn.conv2d %image, %w1, %b1 {padding = array<i64: 1, 1, 1, 1>} : (tensor<4x1x12x12xf32>, tensor<4x1x3x3xf32>, tensor<4xf32>) -> tensor<4x4x12x12xf32>
    %g = nn.load @bn1_scale : tensor<4xf32>
    %beta = nn.load @bn1_bias : tensor<4xf32>
    %mean = nn.load @bn1_mean : tensor<4xf32>
    %var = nn.load @bn1_var : tensor<4xf32>
    %n1 = nn.batch_norm %c1, %g, %beta, %mean, %var : (tensor<4x4x12x12xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4x4x12x12xf32>
    %r1 = nn.relu %n1 : tensor<4x4x12x12xf32>
    %p1 = nn.max_pool2d %r1 {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>} : tensor<4x4x12x12xf32> -> tensor<4x4x6x6xf32>
    %w2 = nn.load @conv2_weight : tensor<8x4x3x3xf32>
    %b2 = nn.load @conv2_bias : tensor<8xf32>
    %c2 = nn.conv2d %p1, %w2, %b2 {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<4x4x6x6xf32>, tensor<8x4x3x3xf32>, tensor<8xf32>) -> tensor<4x8x3x3xf32>
    %r2 = nn.relu %c2 : tensor<4x8x3x3xf32>
    %gap = nn.global_avg_pool %r2 : tensor<4x8x3x3xf32> -> tensor<4x8x1x1xf32>
    %flat = nn.reshape %gap : tensor<4x8x1x1xf32> -> tensor<4x8xf32>
    %wf = nn.load @fc_weight : tensor<10x8xf32>
    %bf = nn.load @fc_bias : tensor<10xf32>
    %logits = nn.linear %flat, %wf, %bf : (tensor<4x8xf32>, tensor<10x8xf32>, tensor<10xf32>) -> tensor<4x10xf32>
    func.return %logits : tensor<4x10xf32>
  }
}
