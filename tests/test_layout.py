"""The layout shows the architecture: package list, README table, module sizes, and the
encoder boundary (only the encoder layer reads model internals)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "alignkit"


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def test_pyproject_lists_every_package_folder_and_the_lexicon_data_package():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(re.findall(r'"(alignkit(?:\.[a-z_]+)*)"', text.split("packages = [", 1)[1].split("]", 1)[0]))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    assert listed == folders | {"alignkit.shipped_lexicons"}


def test_readme_layout_table_names_every_folder_and_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Layout", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    for p in _modules():
        if p.name == "__init__.py":
            continue
        assert f"`{p.name}`" in table, f"README layout table lacks {p.relative_to(ROOT)}"
    for d in {p.parent for p in _modules()} - {PKG}:
        assert f"`alignkit/{d.name}/`" in table, f"README layout table lacks {d.relative_to(ROOT)}/"


def test_no_module_is_over_520_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 520}
    assert not long


def _reads_encoder_layers(path: Path) -> bool:
    """Whether the code (not its docs) of ``path`` evaluates ``<something>.encoder.layer``."""
    import ast

    return any(isinstance(n, ast.Attribute) and n.attr == "layer" and isinstance(n.value, ast.Attribute)
               and n.value.attr == "encoder" for n in ast.walk(ast.parse(path.read_text())))


def test_only_the_encoder_layer_reaches_into_model_encoder_layer():
    users = [str(p.relative_to(ROOT)) for p in _modules() if _reads_encoder_layers(p)]
    assert users == ["alignkit/inputs/fused.py"]


def test_importing_alignkit_is_cheap_and_shows_the_public_api():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, alignkit; print('torch' in sys.modules); "
                          "print(' '.join(n for n in dir(alignkit) if not n.startswith('_')))"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "False"
    for name in ("score", "ScoreConfig", "compare_runs", "run_study", "train", "register_measure", "register_task"):
        assert name in out[1].split()


def _layout_tables() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    arch = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return {"README.md": readme.split("## Layout", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0],
            "docs/architecture.md": arch[arch.index("| stage | package |"):].split("\n\n", 1)[0]}


def test_architecture_layout_table_names_every_module():
    table = _layout_tables()["docs/architecture.md"]
    for p in _modules():
        if p.name != "__init__.py":
            assert f"`{p.name}`" in table, f"docs/architecture.md layout table lacks {p.relative_to(ROOT)}"


def test_layout_tables_name_no_module_that_does_not_exist():
    names = {p.name for p in _modules()}
    for doc, table in _layout_tables().items():
        stale = sorted(set(re.findall(r"`([a-z_]+\.py)`", table)) - names)
        assert not stale, f"{doc} layout table names modules that do not exist: {stale}"
