"""The package's dependency rule: each layer imports only the layers below it (imports inside
functions count), the schema imports nothing of lorastudy, the pipeline never imports training
or evaluation, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib" / "lorastudy"
# Bottom to top. A module may import its own subpackage's modules and any layer below its own.
LAYERS = [
    ["util"],
    ["study.schema", "study.paths", "study.coerce"],
    ["resources"],
    ["tasks"],
    ["methods"],
    ["study"],
    ["models"],
    ["data"],
    ["quantization"],
    ["train", "evaluate"],
    ["results"],
    ["report"],
    ["pipeline"],
    ["notebook", "scaffold", "export"],
    ["cli"],
    ["__main__"],
]
NEVER = {"pipeline": {"train", "evaluate"}}  # the pipeline runs notebooks; they train and evaluate


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name or "__init__"] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules `name` imports, at the top or inside functions."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("lorastudy") for a in node.names), f"{name}: use `from` imports"
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        elif node.module and node.module.split(".")[0] == "lorastudy":
            base = node.module.split(".")[1:]
        else:
            continue
        for alias in node.names:
            target = ".".join([*base, alias.name])
            found.add(target if target in known else ".".join(base) or "__init__")
    return found - {name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer_of(module: str) -> int:
    best = None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def subpackage(module: str) -> str:
    return module.split(".")[0]


def test_each_layer_imports_only_the_layers_below_it():
    upward = []
    for module, targets in graph().items():
        if module == "__init__":
            continue
        for target in targets:
            if target == "__init__" or subpackage(target) == subpackage(module):
                continue
            if layer_of(target) >= layer_of(module):
                upward.append(f"{module} imports {target} (layer {layer_of(target)} >= {layer_of(module)})")
            if subpackage(target) in NEVER.get(subpackage(module), ()):
                upward.append(f"{module} imports {target}, which {subpackage(module)} never imports")
    assert not upward, "\n".join(sorted(upward))


def test_the_schema_imports_nothing_of_lorastudy():
    assert graph()["study.schema"] == set()


def test_no_module_imports_itself_back():
    edges = graph()
    circles = set()

    def visit(module: str, path: list[str]) -> None:
        for target in edges.get(module, ()):
            if target in path:
                circle = path[path.index(target) :]
                start = circle.index(min(circle))
                circles.add(" -> ".join(circle[start:] + circle[:start] + [min(circle)]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(sorted(circles))


def test_the_rule_sees_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The checks above fail where they should: on a package with an upward import and a circle."""
    package = tmp_path / "lorastudy"
    (package / "tasks").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tasks" / "__init__.py").write_text("def get():\n    from ..report import title\n")
    (package / "report.py").write_text("from .tasks import get\n\ndef title():\n    return get\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    edges = graph()
    assert edges["tasks"] == {"report"} and edges["report"] == {"tasks"}
    assert layer_of("tasks") < layer_of("report")


def defined(path: Path) -> set[str]:
    """The names a module binds at its top level (definitions, assignments, imports)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_every_package_import_names_something_that_exists():
    """A moved or renamed definition leaves no import behind that fails only when it runs."""
    known = modules()
    missing = []
    for name, path in known.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            if (base or "__init__") not in known:
                missing.append(f"{name}:{node.lineno}: no module {base}")
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                if alias.name not in defined(known[base or "__init__"]) and submodule not in known:
                    missing.append(f"{name}:{node.lineno}: {base} has no {alias.name}")
    assert not missing, "\n".join(missing)
