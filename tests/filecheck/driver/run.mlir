// `edge-opt run` interprets @forward; `-o out.mlir` writes the large parameter values
// to the sidecar out.npz, which `run` reads back.

// RUN: edge-opt run %examples/tiny_cnn.mlir --input %examples/tiny_cnn_input.npz | filecheck %s
// CHECK: note: @forward does not take labels; ignored
// CHECK: logits: float32[4x10] min

// RUN: rm -rf %t && mkdir -p %t
// RUN: edge-opt %examples/tiny_cnn.mlir -p cse -o %t/cnn.mlir
// RUN: filecheck %s --check-prefix=TEXT < %t/cnn.mlir
// TEXT: nn.param trainable @conv1_weight : tensor<4x1x3x3xf32>{{$}}
// TEXT: nn.param trainable @conv1_bias : tensor<4xf32> = dense<
// TEXT: nn.param trainable @conv2_weight : tensor<8x4x3x3xf32>{{$}}
// RUN: %python -c "import numpy, sys; print(sorted(numpy.load(sys.argv[1]).files))" %t/cnn.npz | filecheck %s --check-prefix=NPZ
// NPZ: ['conv1_weight', 'conv2_weight', 'fc_weight']
// RUN: edge-opt run %t/cnn.mlir --input %examples/tiny_cnn_input.npz -o %t/out.npz | filecheck %s --check-prefix=SIDECAR
// SIDECAR: logits: float32[4x10]
// SIDECAR: wrote {{.*}}out.npz
