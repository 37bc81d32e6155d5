"""The house rules of ``bot/`` (docs/bot.md, "Where the code lives"), read from the source: no
circle of imports; shared pieces (core, medical, i18n, infra) never import a feature; a feature
never imports another; no module grows past 400 lines; ``inference`` imports neither ``bot`` nor
``training``."""

from __future__ import annotations

import ast

from .conftest import ROOT

SHARED = ("bot.core", "bot.medical", "bot.i18n", "bot.infra")
FEATURES = ("bot.screening", "bot.questions", "bot.spots", "bot.account", "bot.admin")


def module_name(path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(package: str) -> dict[str, set[str]]:
    """module → the project modules it imports (``from a import b`` counts a.b when that is a module)."""
    files = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    out = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        out[name] = {d for d in deps if d in files and d != name}
    return out


def within(name: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if name == p or name.startswith(p + ".")), None)


def test_no_circle_of_imports_in_bot():
    graph = imports("bot")
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, "circle: " + " → ".join(path[path.index(dep) :] + [dep]) if dep in path else dep
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_shared_pieces_never_import_a_feature_and_features_never_each_other():
    wrong = []
    for name, deps in imports("bot").items():
        home = within(name, FEATURES)
        for dep in deps:
            target = within(dep, FEATURES)
            if target and (within(name, SHARED) or (home and target != home)):
                wrong.append(f"{name} imports {dep}")
    assert not wrong, wrong


def test_no_module_is_over_400_lines():
    long = {module_name(p): n for p in (ROOT / "bot").rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long


def test_the_core_imports_neither_the_bot_nor_training():
    for name, path in ((module_name(p), p) for p in (ROOT / "inference").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {n for n in names if n.split(".")[0] in ("bot", "training")}, name
