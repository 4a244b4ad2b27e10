"""The package's imports follow the data flow: no module imports a later stage, and there is
no import cycle. Function-level imports count too."""

import ast
import pathlib

import electra_tf

PACKAGE = pathlib.Path(electra_tf.__file__).parent

# Stage of each top-level part, in data-flow order (README "Layout"). `errors` imports nothing.
LAYERS = {
    "errors": 0,
    "config": 1,
    "data": 2, "masking": 2,
    "models": 3,
    "sampling": 4, "objective": 4,
    "training": 5,
    "interop": 6,
    "export": 7,
    "pretraining": 8, "finetune": 8,
    "cli": 9,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    found = set()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "electra_tf"}


def stage(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return -1  # the package root (its __init__ imports nothing)
    return LAYERS[parts[1]]


def modules() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[module_name(path)] = imports_of(path)
    return graph


def test_every_part_of_the_package_has_a_stage():
    for module in modules():
        if module != "electra_tf":
            assert module.split(".")[1] in LAYERS, f"{module}: add its part to LAYERS"


def test_no_module_imports_a_later_stage():
    graph = modules()
    upward = []
    for module, imported in graph.items():
        for name in imported:
            target = name if name in graph else name.rpartition(".")[0]
            if target in graph and stage(target) > stage(module):
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_there_is_no_import_cycle():
    graph = modules()
    edges = {m: {n if n in graph else n.rpartition(".")[0] for n in imported} & set(graph)
             for m, imported in graph.items()}
    # A package importing its own submodules (re-exports) is not a cycle of ideas; drop
    # edges from a package to modules inside it.
    edges = {m: {n for n in targets if not n.startswith(m + ".")} for m, targets in edges.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for module in sorted(edges):
        if module not in state and visit(module, []):
            break
    assert not cycle, " -> ".join(cycle)
