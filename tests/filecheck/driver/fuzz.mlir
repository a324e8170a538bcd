// edge-opt fuzz: bad arguments are one clear line, before any work (more cases in
// tests/test_fuzz.py), and the summary of a campaign that passes.

// RUN: not edge-opt fuzz no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// PASS: edge-opt: error: bad pipeline 'no-such-pass': Unrecognized passes: ['no-such-pass'] (see --list-passes and --list-pipelines)

// RUN: not edge-opt fuzz cse --ops relu,frobnicate 2>&1 | filecheck %s --check-prefix=OPS
// OPS: edge-opt: error: --ops: unknown op 'frobnicate' (edge-opt fuzz --list-ops lists the ops; a plugin op needs its --load-plugin)

// RUN: edge-opt fuzz cse --examples 5 --no-focus | filecheck %s --check-prefix=SUMMARY
// SUMMARY: edge-opt fuzz cse (@forward): 5 examples in {{[0-9.]+}} s ({{[0-9.]+}} examples/s), seed 0, 1 worker
// SUMMARY-NEXT: ops covered ({{[0-9]+}} kinds): {{.*}}
// SUMMARY-NOT: FAILED

func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  func.return %x : tensor<2x3xf32>
}
