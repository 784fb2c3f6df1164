"""Data flows one way: alignkit's import graph (module-level and function-level imports,
read with ast) has no cycle, and no stage imports a later one.

Imports under ``if TYPE_CHECKING:`` are left out: they never run (annotations only)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "alignkit"

# Stages in import order: a module may import its own stage and earlier ones only.
# "foundation": the stage-free shared modules (errors, registries, the measure declarations).
# scoring runs the tasks and writes the results formats (rows, items, manifest, summary), so
# it imports results although its rows flow into them; the tidy row format and the run
# manifest are written from tasks on (the classification tasks' eval-task files).
# executors run units for scoring and the study and know neither (they import only the foundation).
STAGES = ["foundation", "inputs", "vectors", "metrics", "tasks", "results", "executors", "scoring", "study", "cli"]
FOUNDATION = {"alignkit", "alignkit.errors", "alignkit.registry", "alignkit.atomic", "alignkit.workers",
              "alignkit.stats", "alignkit.replication", "alignkit.measures"}
ROW_FORMAT = {"alignkit.results.rows", "alignkit.results.manifest"}
# training is beside the chain: it trains on inputs, the classification tasks read its model
# and pair pipeline, and the study drives it; it must not reach the study or the CLI.
BESIDE = "training"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """alignkit modules ``name`` imports anywhere in its code (top level or inside a function):
    ``import a.b`` -> a.b; ``from a import b`` -> a.b if that is a module, else a."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES} - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def stage(name: str) -> str:
    return "foundation" if name in FOUNDATION else name.split(".")[1]


def test_the_graph_reader_sees_module_and_function_level_imports():
    # scoring imports results.items inside ScoringContext.items, the CLI imports commands lazily
    assert "alignkit.results.items" in GRAPH["alignkit.scoring"]
    assert "alignkit.scoring" in GRAPH["alignkit.cli.score"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_alignkit_has_no_import_cycle():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a}->{b}" for a in c for b in sorted(GRAPH[a] & set(c))) + ")"
        for c in found)


def test_every_module_belongs_to_a_stage():
    assert {stage(m) for m in MODULES} <= {*STAGES, BESIDE}, \
        {m: stage(m) for m in MODULES if stage(m) not in {*STAGES, BESIDE}}


def test_no_stage_imports_a_later_one():
    rank = {s: i for i, s in enumerate(STAGES)}
    rank[BESIDE] = rank["tasks"]  # imported from tasks on; imports up to results
    allowed = {(BESIDE, "results"), ("tasks", BESIDE)}

    def against_the_flow(a: str, b: str) -> bool:
        sa, sb = stage(a), stage(b)
        if sa == sb or (sa, sb) in allowed or (sa == "tasks" and b in ROW_FORMAT):
            return False
        return rank[sb] > rank[sa]

    upstream = sorted(f"{a} -> {b}" for a, bs in GRAPH.items() for b in bs if against_the_flow(a, b))
    assert not upstream, "imports against the data flow: " + ", ".join(upstream)


def test_upstream_stages_do_not_know_training():
    early = ("foundation", "inputs", "vectors", "metrics")
    assert not [f"{a} -> {b}" for a, bs in GRAPH.items() for b in bs if stage(a) in early and stage(b) == BESIDE]


def test_the_search_modules_import_no_private_name_of_another():
    """The blocked search is split by concept (blocks, cpu_tops, torch_tops, blocked, spaces):
    none reaches into another's private names (``_validate``, the package's private module, aside)."""
    private = []
    for name in ("blocks", "blocked", "cpu_tops", "cpu_rank", "torch_tops", "spaces", "buffers", "retrieval", "margin"):
        tree = ast.parse(MODULES[f"alignkit.metrics.{name}"].read_text(encoding="utf-8"))
        private += [f"{name}: {n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and (n.module or "").startswith("alignkit") for a in n.names
                    if a.name.startswith("_") and a.name != "_validate"]
    assert not private, private
