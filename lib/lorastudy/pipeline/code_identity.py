"""The identity of the code a notebook step runs, derived from the source rather than listed.

A step runs its notebook's cells and, through them, some of the lorastudy package. Starting
from the names the notebook's code cells use, this follows references from one top-level
definition (function, class, module constant) to the next across the package's modules, and
hashes what it reaches. So a step's code identity changes when a definition it can reach
changes, and not when one it cannot reach does: changing a scorer changes the evaluation
step's identity, not the training step's.

What counts:
- a notebook's cells without outputs or metadata, code normalised as below;
- each reachable definition as `ast.unparse` writes it, so formatting and comments do not
  count and a reformat redoes nothing; docstrings do count;
- a module's top-level statements that are neither definitions nor imports (a registry
  filled by a call, say), whenever anything of that module is reached;
- names in annotations count as references: conservative, never missing a class.

What does not: code outside the package (library versions are recorded in the report,
not hashed here), and code reached only by a string (`getattr(module, name)`), which the
package does not use. The package and notebooks import it with `from` imports; an
`import lorastudy.x` is refused, not silently missed. Two things a step runs are left out (NOT_HASHED): the validation
of parameters, which accepts or rejects them and resolves them (a step's identity holds its
resolved parameters themselves), and the builder of the offline model, which is cached under
a versioned name and identified by it, as a hub model is by its id.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = "lorastudy"


PACKAGE_DIR = Path(__file__).resolve().parents[1]


# Code a step runs that does not decide its outputs, with why:
NOT_HASHED = {
    # validation: accepts or rejects the parameters and resolves them; the identity holds them resolved
    ("notebook", "setup"),
    # the offline model's builder: a built model is identified by its versioned folder, as a hub model by its id
    ("models.tiny", "build_tiny_model"),
}


# The task declarations (tasks/<name>.py, each `TASK = Task(...)`) are registered on import, so
# every step reaches all of them; each step's identity holds instead the parts of the
# declarations of the tasks it uses that its kind of step runs (task_identity). The code they
# use beside them in tasks/ (metrics, answer extraction, synthetic data) is hashed as any other.
DECLARATIONS = "tasks."


Ref = tuple[str, str | None]  # (module, top-level name), or (module, None) for a whole module


@dataclass
class Module:
    definitions: dict[str, ast.AST] = field(default_factory=dict)
    imports: dict[str, Ref] = field(default_factory=dict)
    statements: list[ast.stmt] = field(default_factory=list)  # run on import, for their effects


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def module_file(package_dir: Path, module: str) -> Path:
    """The source of a module named relative to the package ("__init__" is the package itself,
    "tasks" a subpackage's __init__, "tasks.squad" a module in it)."""
    if module == "__init__":
        return package_dir / "__init__.py"
    path = package_dir.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_declaration(package_dir: Path, module: str) -> bool:
    """A task's declaration module: in tasks/, with a top-level `TASK = ...`."""
    if not module.startswith(DECLARATIONS) or not _is_module(package_dir, module):
        return False
    return "TASK" in _module(package_dir, module).definitions


def _is_module(package_dir: Path, module: str) -> bool:
    path = package_dir.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported_module(node: ast.ImportFrom, current: str, package_dir: Path) -> str | None:
    """The package module a `from` import names ("" for the package itself), or None for a library."""
    if node.level == 0:
        name = node.module or ""
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            return None
        return name[len(PACKAGE) :].lstrip(".")
    parts = [] if current in ("__init__", "<notebook>") else current.split(".")
    if parts and not (package_dir.joinpath(*parts) / "__init__.py").is_file():
        parts = parts[:-1]  # a plain module: its package is its parent
    if node.level - 1 > len(parts):
        return None
    parts = parts[: len(parts) - (node.level - 1)] + (node.module.split(".") if node.module else [])
    return ".".join(parts)


def _package_import(node: ast.ImportFrom, package_dir: Path, current: str = "<notebook>") -> dict[str, Ref]:
    """Local names bound by `from . import x`, `from .x import y`, `from ..x import y` or
    `from lorastudy.x import y`, resolved from the module `current`."""
    module = _imported_module(node, current, package_dir)
    if module is None:
        return {}
    bound = {}
    for alias in node.names:
        local = alias.asname or alias.name
        submodule = f"{module}.{alias.name}" if module else alias.name
        if _is_module(package_dir, submodule):
            bound[local] = (submodule, None)
        else:
            bound[local] = (module or "__init__", alias.name)
    return bound


def _refuse_package_import(node: ast.Import) -> None:
    # `import lorastudy.x` is not followed: refuse it rather than miss the code it reaches.
    if any(alias.name.split(".")[0] == PACKAGE for alias in node.names):
        raise ValueError(f"line {node.lineno}: write `from {PACKAGE} import ...`, the import code_identity follows")


def parse_module(source: str, package_dir: Path, name: str = "__init__") -> Module:
    module = Module()
    for stmt in ast.parse(source).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.definitions[stmt.name] = stmt
        elif isinstance(stmt, ast.ImportFrom):
            module.imports.update(_package_import(stmt, package_dir, name))
        elif isinstance(stmt, ast.Import):
            _refuse_package_import(stmt)  # libraries only
        elif _is_docstring(stmt):
            continue
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and all(
            isinstance(t, ast.Name) for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
        ):
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                module.definitions[target.id] = stmt
        else:
            module.statements.append(stmt)
    return module


class _References(ast.NodeVisitor):
    """The package names a piece of code uses: bare names, and attributes of package modules."""

    def __init__(self, module: str, scope: Module, package_dir: Path):
        self.module, self.scope, self.package_dir = module, scope, package_dir
        self.imports = dict(scope.imports)
        self.found: set[Ref] = set()

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # imports inside functions, and a notebook's
        bound = _package_import(node, self.package_dir, self.module)
        self.imports.update(bound)
        self.found.update(ref for ref in bound.values() if ref[1] is not None)

    def visit_Import(self, node: ast.Import) -> None:
        _refuse_package_import(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.imports and self.imports[base.id][1] is None:
            self.found.add((self.imports[base.id][0], node.attr))
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.imports:
            self.found.add(self.imports[node.id])
        elif node.id in self.scope.definitions:
            self.found.add((self.module, node.id))


def references(node: ast.AST, module: str, scope: Module, package_dir: Path) -> set[Ref]:
    visitor = _References(module, scope, package_dir)
    visitor.visit(node)
    return visitor.found


@cache
def _parse(source: str, package_dir: Path, name: str) -> Module:
    return parse_module(source, package_dir, name)


def _module(package_dir: Path, name: str) -> Module:
    # Keyed by the source, so an edited file is parsed again.
    return _parse(module_file(package_dir, name).read_text(), package_dir, name)


def _on_import(module: Module, name: str, package_dir: Path) -> tuple[str, set[Ref]]:
    """What importing a module runs for its effects: its top-level statements, and definitions
    whose decorator is package code (a decorator can register what it decorates)."""
    registering = [
        node
        for node in module.definitions.values()
        if any(references(d, name, module, package_dir) for d in getattr(node, "decorator_list", []))
    ]
    nodes = module.statements + registering
    refs = set().union(*(references(n, name, module, package_dir) for n in nodes))
    return "\n".join(ast.unparse(n) for n in nodes), refs


def reachable(entries: set[Ref], package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """Every definition reachable from `entries`, as {"module.name": normalised source}; each
    module reached adds what it runs on import as {"module.<import>": source}."""
    seen: dict[str, str] = {}
    todo: list[Ref] = [*entries, ("__init__", "")]  # importing any submodule runs the package's __init__
    while todo:
        module_name, name = todo.pop()
        if (module_name, name) in NOT_HASHED or _is_declaration(package_dir, module_name):
            continue
        module = _module(package_dir, module_name)
        if f"{module_name}.<import>" not in seen:
            seen[f"{module_name}.<import>"], refs = _on_import(module, module_name, package_dir)
            todo += refs
        for each in list(module.definitions) if name is None else [name] if name else []:
            key = f"{module_name}.{each}"
            if key in seen:
                continue
            if each in module.imports:  # a re-export: follow it to where it is defined
                seen[key] = "= " + ".".join(filter(None, module.imports[each]))
                todo.append(module.imports[each])
            elif each in module.definitions:
                seen[key] = ast.unparse(module.definitions[each])
                todo += references(module.definitions[each], module_name, module, package_dir)
            else:  # the code would fail when it runs; the name still counts
                seen[key] = "<undefined>"
    return seen


def notebook_code(path: Path, package_dir: Path = PACKAGE_DIR) -> tuple[list[str], set[Ref]]:
    """A notebook's cells, normalised (code as `ast.unparse` writes it, IPython magics kept as
    text), and the package names its code uses."""
    normalised = []
    visitor = _References("<notebook>", Module(), package_dir)  # one scope: imports carry over between cells
    for cell in json.loads(Path(path).read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] != "code":
            normalised.append(f"{cell['cell_type']}: {text}")
            continue
        lines = text.splitlines()
        magics = [line for line in lines if line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(line for line in lines if line not in magics))
        except SyntaxError as exc:
            raise SyntaxError(f"{path}: a code cell does not parse ({exc})") from None
        normalised.append("code: " + "\n".join([*magics, ast.unparse(tree)]))
        visitor.visit(tree)
    return normalised, visitor.found


@dataclass(frozen=True)
class CodeIdentity:
    hash: str
    parts: dict[str, str]  # "<cells>" of the notebook and each "module.name" reached -> a short hash of its source


def code_identity(notebook: Path, package_dir: Path = PACKAGE_DIR) -> CodeIdentity:
    cells, entries = notebook_code(notebook, package_dir)
    sources = {"<cells>": "\n\n".join(cells), **reachable(entries, package_dir)}
    parts = {key: hashlib.sha256(text.encode()).hexdigest()[:12] for key, text in sorted(sources.items())}
    whole = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return CodeIdentity(whole, parts)


def task_identity(task: str, fields: tuple[str, ...], package_dir: Path = PACKAGE_DIR) -> str | None:
    """A hash of the parts of a built-in task's declaration (`TASK = Task(...)` in tasks/<task>.py)
    that a step uses, `fields` of the Task, and all the code they reach: a training step hashes
    the task's training prompt, not its scorer. None for a task declared outside the package,
    whose version alone then stands for it."""
    name = f"{DECLARATIONS}{task}"
    if not _is_declaration(package_dir, name):
        return None
    module = _module(package_dir, name)
    call = module.definitions["TASK"].value
    nodes = [k.value for k in call.keywords if k.arg in fields]
    todo = list(set().union(set(), *(references(n, name, module, package_dir) for n in nodes)))
    own, elsewhere = {}, set()
    while todo:  # the declaration module's own helpers, then everything else they reach
        ref = todo.pop()
        if ref[0] == name and ref[1] in module.definitions and ref[1] not in own:
            own[ref[1]] = ast.unparse(module.definitions[ref[1]])
            todo += references(module.definitions[ref[1]], name, module, package_dir)
        elif not _is_declaration(package_dir, ref[0]):
            elsewhere.add(ref)
    sources = {"fields": "\n".join(ast.unparse(n) for n in nodes), **own, **reachable(elsewhere, package_dir)}
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:16]
