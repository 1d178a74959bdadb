"""The package's shape: no import circles between freqlib modules (lazy imports
inside functions count too), and one evaluation primitive."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "freqlib"


def _imports(path: Path) -> set[str]:
    """Names of freqlib modules that ``path`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found |= {a.name for a in node.names}
            elif node.module and node.module.startswith("freqlib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("freqlib.")}
    return found & {p.stem for p in PKG.glob("*.py")}


def import_graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) - {p.stem} for p in PKG.glob("*.py") if p.stem != "__main__"}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_modules():
    assert cycles(import_graph()) == []


def test_one_evaluation_primitive():
    """Forward passes for evaluation go through freqlib.evaluate, not private copies."""
    for path in PKG.glob("*.py"):
        if path.stem == "evaluate":
            continue
        tree = ast.parse(path.read_text())
        defs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defs & {"forward_logits", "predict_logits", "autocast", "eval_batch_size"}, path.name


def _public_names(path: Path) -> list[str]:
    """The string entries of a module's ``__all__`` (read from the source, nothing imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


def _defined_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_every_public_name_exists():
    """A name renamed or removed must leave ``__all__`` too (``import *`` and the API pages read it)."""
    missing = {p.stem: sorted(set(_public_names(p)) - _defined_names(p)) for p in PKG.glob("*.py")}
    assert not {k: v for k, v in missing.items() if v}, missing
