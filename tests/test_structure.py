"""The package's shape, read from the source with `ast` (nothing is imported): the import
graph has no cycle, counting imports inside functions, and evaluation and inference depend
on nothing of training but the checkpoint reader."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "lexi"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """lexi modules `path` imports anywhere in its body. `from pkg import sub` counts as an
    import of pkg.sub when that is a module, else of pkg."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            out |= subs
            if len(subs) < len(node.names) and mod in known:
                out.add(mod)
    return out - {name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str]:
    """One cycle of `g` as a path that returns to its start, or []."""
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(g[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return []

    for v in sorted(g):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return []


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in g[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_import_graph_has_no_cycle():
    assert find_cycle(graph()) == []


def test_the_cycle_finder_finds_a_cycle_and_reads_relative_and_function_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    pkg = tmp_path / "lexi" / "p"
    pkg.mkdir(parents=True)
    (pkg / "m.py").write_text("def f():\n    from . import n\n    from lexi.p.n import x\n    import lexi.q\n")
    known = {"lexi.p", "lexi.p.m", "lexi.p.n", "lexi.q"}
    global ROOT
    saved, ROOT = ROOT, tmp_path / "lexi"
    try:
        assert imports_of("lexi.p.m", pkg / "m.py", known) == {"lexi.p.n", "lexi.q"}
    finally:
        ROOT = saved


def test_eval_and_inference_need_nothing_of_training_but_the_checkpoint_reader():
    g = graph()
    for start in ["lexi.inference"] + [m for m in g if m.startswith("lexi.eval")]:
        train = {m for m in reachable(g, start) if m.startswith("lexi.train")}
        assert train <= {"lexi.train", "lexi.train.checkpoint"}, (start, sorted(train))


def test_the_training_package_does_not_reach_into_zett():
    g = graph()
    for m in g:
        if m.startswith("lexi.train"):
            assert not {d for d in g[m] if d.startswith("lexi.zett")}, m


def test_no_module_is_longer_than_400_lines():
    """Past that, a file holds more than one concern: split it along them."""
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
