"""The house shows the pipeline: imports point one way (read from every module's source with `ast`).

- no import cycle between digest modules at module level (TYPE_CHECKING imports count: they are a
  cycle in the design even when Python never runs them; imports inside functions do not);
- the web apps (digest/web) reach state and rendering only through the pipeline;
- a stage imports no sibling stage, except `checks` (a leaf any stage may use), and besides itself only
  the shared ground (models, errors, logs, safe_text), config and state;
- only digest/state imports a database driver, only digest/render a template or email engine.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DIGEST = Path(__file__).resolve().parent.parent / "digest"
STAGES = ("ingest", "compose", "render", "checks", "deliver", "publish", "schedule")
GROUND = ("models", "errors", "logs", "safe_text", "config", "state")
DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
ENGINES = ("jinja2", "mjml", "premailer")


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # what is imported: "digest.state.store", "jinja2"
    line: int
    top_level: bool  # at module level (also inside `if TYPE_CHECKING:` or try), not in a function


def module_name(path: Path) -> str:
    parts = path.relative_to(DIGEST.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(DIGEST.rglob("*.py"))}


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        inner = top_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield child, inner
        yield from _walk(child, inner)


def imports_of(name: str) -> tuple[Import, ...]:
    """Every import in module `name`, resolved to absolute names (`from a import b` gives a.b when b is
    a module, else a)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, top in _walk(tree, True):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append(Import(target if target in MODULES else base, node.lineno, top))
    return tuple(found)


IMPORTS = {name: imports_of(name) for name in MODULES}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_cycles() -> list[list[str]]:
    """The strongly connected components (Tarjan) of more than one module, or a module importing itself."""
    graph = {
        name: sorted({i.module for i in found if i.top_level and i.module in MODULES})
        for name, found in IMPORTS.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return cycles


def test_the_import_reader_sees_imports() -> None:
    # A guard that the checks below can fail: the reader finds known imports, relative ones included.
    assert "digest.state.store" in {i.module for i in IMPORTS["digest.pipeline.run"]}
    assert any(i.module == "jinja2" for i in IMPORTS["digest.render"])
    assert len(MODULES) > 50


def test_no_import_cycle_between_digest_modules() -> None:
    assert import_cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        IMPORTS, "digest.models", (*IMPORTS["digest.models"], Import("digest.errors", 1, True))
    )
    monkeypatch.setitem(
        IMPORTS, "digest.errors", (*IMPORTS["digest.errors"], Import("digest.models", 1, True))
    )
    assert ["digest.errors", "digest.models"] in import_cycles()


def test_the_web_apps_reach_state_and_render_only_through_the_pipeline() -> None:
    offending = [
        f"{MODULES[name].relative_to(DIGEST.parent)}:{i.line}: imports {i.module}"
        for name, found in IMPORTS.items()
        if _within(name, "digest.web")
        for i in found
        if _within(i.module, "digest.state") or _within(i.module, "digest.render")
    ]
    assert offending == []


def test_a_stage_imports_no_sibling_stage() -> None:
    offending = []
    for name, found in IMPORTS.items():
        stage = _stage_of(name)
        if stage not in STAGES:
            continue
        allowed = {f"digest.{stage}", "digest.checks", *(f"digest.{g}" for g in GROUND)}
        for i in found:
            if i.module == "digest" or not _within(i.module, "digest"):
                continue
            if not any(_within(i.module, a) for a in allowed):
                offending.append(f"{MODULES[name].relative_to(DIGEST.parent)}:{i.line}: imports {i.module}")
    assert offending == []


@pytest.mark.parametrize(
    ("libraries", "owner"),
    [(DRIVERS, "digest.state"), (ENGINES, "digest.render")],
    ids=["drivers", "engines"],
)
def test_only_one_package_imports_each_engine(libraries: tuple[str, ...], owner: str) -> None:
    offending = [
        f"{MODULES[name].relative_to(DIGEST.parent)}:{i.line}: imports {i.module}"
        for name, found in IMPORTS.items()
        if not _within(name, owner)
        for i in found
        if any(_within(i.module, lib) for lib in libraries)
    ]
    assert offending == []
