"""House rules a reviewer would otherwise check by hand: short functions, and no per-task or
per-method branches outside the declarations."""

from __future__ import annotations

import ast
from pathlib import Path

from lorastudy import methods, tasks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib" / "lorastudy"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in python_files(PACKAGE, ROOT / "benchmarks"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_no_module_is_longer_than_400_lines():
    long = [
        f"{path.relative_to(ROOT)} ({n} lines)"
        for path in python_files(PACKAGE)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, "modules over 400 lines:\n" + "\n".join(long)


def test_no_code_outside_the_declarations_branches_on_a_task_or_method_name():
    names = set(methods.METHODS.names()) | set(tasks.TASKS.names())
    declarations = {*(PACKAGE / "methods").glob("*.py"), *(PACKAGE / "tasks").glob("*.py")}
    branches = []
    for path in python_files(PACKAGE):
        if path in declarations:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                constants = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                hits = names & {c for c in constants if isinstance(c, str)}
                if hits:
                    branches.append(f"{path.relative_to(ROOT)}:{node.lineno} compares with {sorted(hits)}")
    assert not branches, "\n".join(branches)
