"""docs/tutorial-fuzzing.md runs as written: its files are written to an empty
directory, its commands run there in order, and the lines it shows must appear in
their output, in order.

The format the test reads: a fenced block whose first line is `# file: NAME` (or
`// file: NAME`) is a file; a ```console block holds `$ COMMAND` lines, each followed
by the lines it prints, where `...` stands for any text within a line and a line
`...` for any lines. A command whose shown output has a line starting with `FAILED`
must exit with status 1, any other with 0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parent.parent / "docs" / "tutorial-fuzzing.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", flags=re.DOTALL)
FILE = re.compile(r"(?:#|//) file: (\S+)")


def _steps(text: str) -> list[tuple[str, str, list[str]]]:
    """("file", NAME, [content]) and ("run", COMMAND, expected lines), in order."""
    steps: list[tuple[str, str, list[str]]] = []
    for kind, body in BLOCK.findall(text):
        first = body.splitlines()[0] if body else ""
        if (found := FILE.fullmatch(first)) is not None:
            steps.append(("file", found.group(1), [body]))
        elif kind == "console":
            for chunk in body.split("$ ")[1:]:
                command, *expected = chunk.rstrip("\n").split("\n")
                steps.append(("run", command, expected))
    return steps


def _run(command: str, cwd: Path) -> tuple[int, str]:
    """Runs `command` in `cwd` (the current directory): `edge-opt` in a fresh process,
    as a user would (in this process, after the rest of the suite, the campaigns drew
    other models than from a shell)."""
    words = shlex.split(command)
    if words[0] == "cat":
        return 0, (cwd / words[1]).read_text()
    assert words[0] == "edge-opt", command
    done = subprocess.run([sys.executable, "-m", "edge_opt.tools.driver", *words[1:]],
                          cwd=cwd, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def _matches(expected: list[str], output: str) -> str | None:
    """Why `output` lacks the expected lines (in order), or None."""
    lines = output.splitlines()
    at = 0
    for want in expected:
        if want == "...":
            continue
        pattern = re.compile(".*".join(map(re.escape, want.split("..."))))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return f"no line matching {want!r}"
        at += 1
    return None


def test_the_tutorial_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = _steps(DOC.read_text())
    files = [name for kind, name, _ in steps if kind == "file"]
    assert files == ["fuse_bias.py", "model.mlir", "fuse_bias.rules",
                     "fuse_bias_wrong.rules"]
    assert sum(kind == "run" for kind, _, _ in steps) == 8
    for kind, what, lines in steps:
        if kind == "file":
            (tmp_path / what).write_text(lines[0])
            continue
        status, output = _run(what, tmp_path)
        failing = any(line.startswith("FAILED") for line in lines)
        assert status == (1 if failing else 0), f"$ {what}\n{output}"
        why = _matches(lines, output)
        assert why is None, f"$ {what}: {why}\n{output}"
