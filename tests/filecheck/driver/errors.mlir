// Bad input gets one clear line (or a caret diagram), exit status 1, no traceback.

// RUN: not edge-opt %inputs/does-not-exist.mlir 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: edge-opt: error: {{.*}}does-not-exist.mlir: no such file
// MISSING-NOT: Traceback

// RUN: not edge-opt %inputs/parse_error.mlir 2>&1 | filecheck %s --check-prefix=PARSE
// PARSE:      edge-opt: error: parse error: {{.*}}parse_error.mlir:3:{{[0-9]+}}
// PARSE-NEXT:   %z = nn.frobnicate %y : tensor<2x3xf32>
// PARSE:      Operation nn.frobnicate is not registered
// PARSE-NOT: Traceback

// RUN: not edge-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// PASS: edge-opt: error: bad pipeline 'no-such-pass': Unrecognized passes: ['no-such-pass'] (see --list-passes and --list-pipelines)

// RUN: not edge-opt %s --pipeline cse 2>&1 | filecheck %s --check-prefix=NOTNAMED
// NOTNAMED: edge-opt: error: bad pipeline 'cse': cse is a pass, not a named pipeline: give it with -p (see --list-pipelines for the named pipelines)

// RUN: not edge-opt %s -p "cse{" 2>&1 | filecheck %s --check-prefix=SPEC
// SPEC: edge-opt: error: bad pipeline 'cse{'

// RUN: not edge-opt %s -f onnx 2>&1 | filecheck %s --check-prefix=FORMAT
// FORMAT: edge-opt: error:

// RUN: not edge-opt run %inputs/missing_values.mlir 2>&1 | filecheck %s --check-prefix=VALUES
// VALUES: edge-opt: error: {{.*}}missing_values.mlir: 1 parameter(s) have no value (@w) and {{.*}}missing_values.npz does not exist

// RUN: not edge-opt run %examples/tiny_cnn.mlir --input %inputs/does-not-exist.npz 2>&1 | filecheck %s --check-prefix=NPZ
// NPZ: edge-opt: error: {{.*}}does-not-exist.npz: no such file

// RUN: not edge-opt run %examples/tiny_cnn.mlir --input %examples/tiny_cnn.npz 2>&1 | filecheck %s --check-prefix=NOINPUT
// NOINPUT: edge-opt: error: @forward takes inputs ['image']; missing ['image']

// RUN: not edge-opt run %examples/tiny_cnn.mlir --function train 2>&1 | filecheck %s --check-prefix=NOFUNC
// NOFUNC: edge-opt: error: the module has no function @train (it has: @forward)

func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {
  func.return %x : tensor<2xf32>
}
