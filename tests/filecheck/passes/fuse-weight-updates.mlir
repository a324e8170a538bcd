// fuse-weight-updates: each plain-SGD update of a weight whose gradient has no other use
// becomes one op that computes the gradient chunk by chunk and applies SGD to it, so
// no whole weight gradient exists. chunk-bytes=300 gives 2 rows of the linear weight
// (128 B each) and 4 of the convolution's (72 B each). At the buffer level the new
// weight is written into the parameter's buffer and the workspace is one more output.
// Momentum reads the whole gradient: nothing is fused. tile-l1 (1 KiB of L1) cuts the
// fused ops over the weight's rows and columns only (dy and x whole along what the
// gradient sums over), the weight read and written through one window, and gives each
// tile an L1 workspace of the weight's tile (chunk_rows = the tile's rows); the L2
// workspace is gone.

// RUN: edge-opt %s -p 'train-full{loss=mse lr=0.1},fuse-weight-updates{chunk-bytes=300}' | filecheck %s
// RUN: edge-opt %s -p 'train-full{loss=mse lr=0.1},fuse-weight-updates{chunk-bytes=300},bufferize' | filecheck %s --check-prefix=BUF
// RUN: edge-opt %s -p 'train-full{loss=mse lr=0.1 momentum=0.9},fuse-weight-updates' | filecheck %s --check-prefix=MOMENTUM
// RUN: edge-opt %s -p 'train-full{loss=mse lr=0.1},fuse-weight-updates{chunk-bytes=300},bufferize,tile-l1{soc=gap9 l1-bytes=1024}' | filecheck %s --check-prefix=TILE

// CHECK:       builtin.module attributes {edge_opt.memory_passes = [{pass = "fuse-weight-updates", function = "train_step", peak_before = 788 : i64, peak_after = 276 : i64, extra_flops = 0 : i64, search = "local"}]} {
// CHECK-LABEL: func.func @train_step(
// CHECK-NOT:     train.linear_grad_weight %
// CHECK:         %fw_new = train.linear_grad_weight_sgd %d_y, %f, %fw {lr = 1.000000e-01 : f32, chunk_rows = 2 : i64} : (tensor<1x4xf32>, tensor<1x32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
// CHECK-NEXT:    train.store %fw_new, @fw
// CHECK-NOT:     train.conv2d_grad_weight %
// CHECK:         %cw_new = train.conv2d_grad_weight_sgd %d_c, %x, %cw {lr = 1.000000e-01 : f32, chunk_rows = 4 : i64, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>}
// CHECK-NEXT:    train.store %cw_new, @cw
// CHECK-NOT:     train.sgd

// BUF-LABEL: func.func @train_step(
// BUF:         %cw = kernel.get_param @cw
// BUF:         %fw = kernel.get_param @fw
// BUF:         %workspace = kernel.alloc : memref<2x32xf32, "L2">
// BUF-NEXT:    kernel.linear_grad_weight_sgd ins(%y, %f, %fw : {{.*}}) outs(%fw, %workspace : memref<4x32xf32, "L2">, memref<2x32xf32, "L2">)
// BUF:         %workspace_1 = kernel.alloc : memref<4x2x3x3xf32, "L2">
// BUF-NEXT:    kernel.conv2d_grad_weight_sgd ins(%d_c, %x, %cw : {{.*}}) outs(%cw, %workspace_1 : memref<8x2x3x3xf32, "L2">, memref<4x2x3x3xf32, "L2">)
// BUF-NOT:     kernel.copy

// MOMENTUM-NOT: grad_weight_sgd
// MOMENTUM:     train.sgd_momentum
// MOMENTUM-NOT: grad_weight_sgd

// TILE-LABEL: func.func @train_step(
// TILE-NOT:     memref<2x32xf32, "L2">
// TILE:         %[[S:.*]] = tile.schedule {{.*}}extents = array<i64: 4, 32>, sizes = array<i64: 1, 32>
// TILE-NEXT:    %workspace = kernel.alloc : memref<1x32xf32, "L1">
// TILE-NEXT:    tile.for %[[T:.*]] in %[[S]] {
// TILE-NEXT:      %[[DY:.*]] = tile.window %y{{.*}} {map = array<i64: -1, 0>} : memref<1x4xf32, "L2"> -> memref<1x1xf32, "L2">
// TILE-NEXT:      %[[X:.*]] = tile.window %f, %[[S]] at %[[T]] {map = array<i64: -1, 1>} : memref<1x32xf32, "L2"> -> memref<1x32xf32, "L2">
// TILE-NEXT:      %[[W:.*]] = tile.window %fw, %[[S]] at %[[T]] {map = array<i64: 0, 1>} : memref<4x32xf32, "L2"> -> memref<1x32xf32, "L2">
// TILE-NEXT:      %[[WS:.*]] = tile.slot %[[S]] at %[[T]] slots(%workspace) {map = array<i64: 0, 1>}
// TILE-NEXT:      kernel.linear_grad_weight_sgd ins(%[[DY]], %[[X]], %[[W]] : {{.*}}) outs(%[[W]], %[[WS]] : memref<1x32xf32, "L2">, memref<1x32xf32, "L1">) {lr = 1.000000e-01 : f32}
// TILE-NEXT:      tile.yield
// TILE:         %[[S2:.*]] = tile.schedule {{.*}}extents = array<i64: 8, 2>, sizes = array<i64: 4, 1>
// TILE-NEXT:    %workspace_1 = kernel.alloc : memref<4x1x3x3xf32, "L1">
// TILE-NEXT:    tile.for %[[T2:.*]] in %[[S2]] {
// TILE-NEXT:      %[[DC:.*]] = tile.window %d_c{{.*}} {map = array<i64: -1, 0, -1, -1>} : memref<1x8x2x2xf32, "L2"> -> memref<1x4x2x2xf32, "L2">
// TILE-NEXT:      %[[XC:.*]] = tile.window %x{{.*}} {map = array<i64: -1, 1, -1, -1>} : memref<1x2x4x4xf32, "L2"> -> memref<1x1x4x4xf32, "L2">
// TILE-NEXT:      %[[CW:.*]] = tile.window %cw{{.*}} {map = array<i64: 0, 1, -1, -1>} : memref<8x2x3x3xf32, "L2"> -> memref<4x1x3x3xf32, "L2">
// TILE-NEXT:      %[[WS2:.*]] = tile.slot %[[S2]] at %[[T2]] slots(%workspace_1) {map = array<i64: 0, 1, -1, -1>}
// TILE-NEXT:      kernel.conv2d_grad_weight_sgd ins(%[[DC]], %[[XC]], %[[CW]] : {{.*}}) outs(%[[CW]], %[[WS2]] : {{.*}}) {lr = 1.000000e-01 : f32, chunk_rows = 4 : i64, stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>}
// TILE-NOT:     memref<4x2x3x3xf32, "L2">

builtin.module {
  nn.param trainable @cw : tensor<8x2x3x3xf32> = dense<0.1> : tensor<8x2x3x3xf32>
  nn.param trainable @fw : tensor<4x32xf32> = dense<0.01> : tensor<4x32xf32>
  func.func @forward(%x: tensor<1x2x4x4xf32>) -> tensor<1x4xf32> {
    %cw = nn.load @cw : tensor<8x2x3x3xf32>
    %fw = nn.load @fw : tensor<4x32xf32>
    %c = nn.conv2d %x, %cw {stride = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<1x2x4x4xf32>, tensor<8x2x3x3xf32>) -> tensor<1x8x2x2xf32>
    %r = nn.relu %c : tensor<1x8x2x2xf32>
    %f = nn.reshape %r : tensor<1x8x2x2xf32> -> tensor<1x32xf32>
    %y = nn.linear %f, %fw : (tensor<1x32xf32>, tensor<4x32xf32>) -> tensor<1x4xf32>
    func.return %y : tensor<1x4xf32>
  }
}
