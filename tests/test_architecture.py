"""The layering docs/architecture.md describes, checked on the source: no import cycle among s1jax modules (module-level
and function-local imports both count), each package imports only the layers below it, and s1jax modules are
imported inside functions only where the allowlist below says why. Pure AST work: no module is imported."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "s1jax"

# What each top-level part of s1jax may import (besides itself). "s1jax" is the lazy public API package
# (s1jax/__init__.py imports nothing itself); modules that call s1jax.generate / s1jax.load_model through it resolve
# those at call time, which keeps them importable without JAX and gives tests one seam to replace.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "jsonfile": set(),
    "sharding": set(),
    "exit_codes": set(),
    "compilation_cache": set(),
    "hub": set(),
    "gguf_file": set(),
    "model": {"sharding", "jsonfile", "hub", "gguf_file"},
    "tokenizer": {"jsonfile", "hub", "gguf_file"},
    "data": {"tokenizer"},
    "inference": {"model", "tokenizer", "sharding"},
    "eval": {"data", "s1jax"},
    "curation": {"data", "tokenizer", "eval", "s1jax"},
    "train": {"model", "data", "tokenizer", "sharding", "exit_codes"},
    "aot": {"config", "model", "train", "inference", "sharding"},
    "builders": {"config", "inference", "model", "tokenizer", "sharding"},
    "parity": {"s1jax", "hub"},
    "demo": {"config", "builders", "curation", "eval", "inference", "model", "tokenizer", "train", "data",
             "compilation_cache", "hub"},
    "__main__": {"cli"},
    "cli": {"config", "jsonfile", "builders", "curation", "demo", "eval", "inference", "model", "tokenizer", "train", "data",
            "sharding", "s1jax", "exit_codes", "aot", "parity"},
}

# (importer, imported): the only s1jax imports allowed inside a function, each for a stated reason.
FUNCTION_LOCAL_ALLOWED = {
    # math-verify + a grading process pool, needed only when a curation pool has no precomputed grades
    ("s1jax.curation.solvers", "s1jax.eval.grading"),
    # these import JAX, which reads JAX_PLATFORMS when imported: only after main() ran aot.host_env.compile_host_env()
    ("s1jax.cli.compile", "s1jax.aot.compile"),
    ("s1jax.cli.compile", "s1jax.aot.report"),
    ("s1jax.aot.scale_table", "s1jax.aot.compile"),
    ("s1jax.aot.scale_table", "s1jax.aot.report"),
    # the TFDS builder classes subclass tensorflow_datasets' (the optional tfds extra): imported only to build
    ("s1jax.data.tfds.prepare", "s1jax.data.tfds.builders"),
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, pathlib.Path]) -> str | None:
    """The s1jax module an imported name lives in (the longest existing prefix), or None if not s1jax."""
    if name != "s1jax" and not name.startswith("s1jax."):
        return None
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> list[tuple[str, bool, int]]:
    """``(imported module, inside a function, line)`` for every s1jax import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _resolve(alias.name, modules)
                    if target:
                        out.append((target, in_function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    target = _resolve(f"{base}.{alias.name}", modules) or _resolve(base, modules)
                    if target:
                        out.append((target, in_function, child.lineno))
            visit(child, local)

    visit(tree, False)
    return [(t, f, line) for t, f, line in out if t != module]


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool, int]]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "s1jax"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles(graph):
    edges = {m: {t for t, _, _ in imports} for m, imports in graph.items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles among s1jax modules (module-level and function-local imports):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_cycle_detector_finds_a_planted_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_each_package_imports_only_the_layers_below(graph):
    bad = []
    for module, imports in graph.items():
        part = _part(module)
        if part not in ALLOWED:
            continue
        for target, _, line in imports:
            other = _part(target)
            if other != part and other not in ALLOWED[part]:
                bad.append(f"{module}:{line} imports {target} ({part} may import {sorted(ALLOWED[part])})")
    assert not bad, "\n".join(bad)


def test_every_top_level_part_has_a_rule():
    parts = {_part(m) for m in _modules()} - {"s1jax"}
    assert parts <= set(ALLOWED), f"add a layering rule for {sorted(parts - set(ALLOWED))}"


def test_curation_is_the_only_data_level_package_that_uses_inference_or_eval(graph):
    users = sorted({_part(m) for m, imports in graph.items() for t, _, _ in imports
                    if _part(t) in ("inference", "eval") and _part(m) in ("data", "curation", "model", "tokenizer",
                                                                          "train")})
    assert users in ([], ["curation"]), users
    data_users = [m for m, imports in graph.items() if _part(m) == "data"
                  for t, _, _ in imports if _part(t) in ("inference", "eval", "curation", "s1jax")]
    assert not data_users, data_users


def test_function_local_imports_are_the_allowlisted_ones(graph):
    local = sorted({(m, t) for m, imports in graph.items() for t, in_function, _ in imports if in_function})
    assert set(local) <= FUNCTION_LOCAL_ALLOWED, f"function-local s1jax imports: {local}"
