// Rule files that are rejected when they are loaded, before anything is rewritten: each
// is one `edge-opt: error: FILE:LINE:COLUMN: message` line (the files are in
// inputs/rules/).

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/syntax-error.rules}' 2>&1 | filecheck %s --check-prefix=SYNTAX
// SYNTAX: edge-opt: error: {{.*}}/inputs/rules/syntax-error.rules:2:31: syntax error: unexpected '=>', expected one of ')' or ','
// SYNTAX-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/unknown-op.rules}' 2>&1 | filecheck %s --check-prefix=OP
// OP: edge-opt: error: {{.*}}/inputs/rules/unknown-op.rules:2:6: unknown op 'rleu' (did you mean 'relu'?)
// OP-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/operand-count.rules}' 2>&1 | filecheck %s --check-prefix=ARITY
// ARITY: edge-opt: error: {{.*}}/inputs/rules/operand-count.rules:1:36: nn.linear takes 2 to 3 operands, got 4
// ARITY-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/unknown-attribute.rules}' 2>&1 | filecheck %s --check-prefix=ATTR
// ATTR: edge-opt: error: {{.*}}/inputs/rules/unknown-attribute.rules:1:30: unknown attribute 'dim' of nn.softmax (its attributes: axis)
// ATTR-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/unbound-replacement.rules}' 2>&1 | filecheck %s --check-prefix=UNBOUND
// UNBOUND: edge-opt: error: {{.*}}/inputs/rules/unbound-replacement.rules:1:21: unbound name 'y' in the replacement (the pattern binds x)
// UNBOUND-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/unbound-condition.rules}' 2>&1 | filecheck %s --check-prefix=UNBOUNDWHERE
// UNBOUNDWHERE: edge-opt: error: {{.*}}/inputs/rules/unbound-condition.rules:2:16: unbound name 'bias' in a condition (the pattern binds b, w, x)
// UNBOUNDWHERE-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/attribute-type.rules}' 2>&1 | filecheck %s --check-prefix=KIND
// KIND: edge-opt: error: {{.*}}/inputs/rules/attribute-type.rules:1:48: attribute perm of nn.transpose takes a list of integers, got an integer
// KIND-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/missing-attribute.rules}' 2>&1 | filecheck %s --check-prefix=REQUIRED
// REQUIRED: edge-opt: error: {{.*}}/inputs/rules/missing-attribute.rules:1:28: nn.transpose needs the attribute(s) perm
// REQUIRED-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/element-type.rules}' 2>&1 | filecheck %s --check-prefix=ELEMENT
// ELEMENT: edge-opt: error: {{.*}}/inputs/rules/element-type.rules:1:20: nn.relu takes a float tensor here, but the conditions make its element type i64
// ELEMENT-NOT: Traceback

// RUN: not edge-opt %s -p 'rules{file=%inputs/rules/no-such.rules}' 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: edge-opt: error: {{.*}}/inputs/rules/no-such.rules: no such rule file

// RUN: not edge-opt %s -p 'rules' 2>&1 | filecheck %s --check-prefix=NOFILE
// NOFILE: edge-opt: error: rules: no rule file given; write rules{file=PATH}

func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %0 = nn.neg %x : tensor<2x4xf32>
  func.return %0 : tensor<2x4xf32>
}
