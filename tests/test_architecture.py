"""The package's shape: the import rules of its subpackages, and DVC dependencies that mean something.

Read statically (the AST of every module, imports inside functions
included), so the rules hold for code paths no test happens to run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
import yaml

from ferjax.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ferjax"
SUBPACKAGES = ("plumbing", "faces", "analysis", "people", "networks", "explain", "report", "cli")


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``ferjax.a.b``), or None if it is not a module."""
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path):
    """``(line, module, imported names)`` of every ferjax import in ``path``; names are None for ``import x``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ferjax":
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ferjax":
                    yield node.lineno, alias.name, None


def imported_modules(path: Path) -> set[str]:
    """The ferjax modules ``path`` loads: each import's module, its parent packages, and imported submodules."""
    out = set()
    for _, module, names in imports(path):
        parts = module.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        out |= {f"{module}.{n}" for n in names or () if module_file(f"{module}.{n}")}
    return out


def closure(start) -> set[Path]:
    """Every ferjax source file loaded, directly or not, by importing the modules ``start``."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += imported_modules(module_file(name)) | {".".join(name.split(".")[:i])
                                                        for i in range(1, name.count(".") + 1)}
    return {module_file(n) for n in seen}


def package_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def allowed_imports(package: str) -> set[str]:
    """The "May import:" line of a subpackage's docstring: the other subpackages it may import."""
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
    found = re.search(r"^May import: (.*)\.$", doc, re.M)
    assert found, f"ferjax/{package}/__init__.py: its docstring must end with 'May import: ...'"
    text = found.group(1)
    return set() if text.startswith("nothing") else {p.strip() for p in text.split(",")}


def sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_subpackage():
    stray = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not stray, f"modules outside a subpackage: {stray}"
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == \
        sorted(SUBPACKAGES)


def test_subpackages_import_only_what_their_docstring_allows():
    problems = []
    for path in sources():
        package = package_of(path)
        if package is None or package == "cli":
            continue
        may = allowed_imports(package) | {package}
        for line, module, _ in imports(path):
            target = module.split(".")[1] if module.count(".") else None
            if target not in may:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module} (ferjax.{package} may import "
                                f"{', '.join(sorted(may - {package})) or 'nothing'})")
    assert not problems, "\n".join(problems)


def test_the_subpackage_order_has_no_cycle():
    # each subpackage may import only those listed before it
    for i, package in enumerate(SUBPACKAGES[:-1]):
        assert allowed_imports(package) <= set(SUBPACKAGES[:i]), package


def test_no_private_name_crosses_a_subpackage():
    problems = []
    for path in sources():
        package, tree = package_of(path), ast.parse(path.read_text())
        bound = {}
        for line, module, names in imports(path):
            other = module.split(".")[1] if module.count(".") else None
            for name in names or ():
                if other != package and name.startswith("_") and not name.startswith("__"):
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}.{name}")
                target = f"{module}.{name}"
                if module_file(target):
                    bound[name] = target.split(".")[1]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and bound[node.value.id] != package and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not problems, "\n".join(problems)


def test_nothing_outside_the_cli_imports_it():
    problems = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in sources() if package_of(path) != "cli" and path.name != "__main__.py"
                for line, module, _ in imports(path) if module.startswith("ferjax.cli")]
    assert not problems, "\n".join(problems)


def test_the_command_list_matches_the_commands():
    """`ferjax --help` lists each command with a stored summary, so that it imports none of them."""
    from ferjax.cli import main

    ctx = click.Context(main)
    for name, (_, _, summary) in COMMANDS.items():
        assert main.get_command(ctx, name).get_short_help_str(limit=300) == summary, name


STAGE_COMMANDS = {stage: module for stage, (module, _, _) in COMMANDS.items()}


def stage_files(stage: str) -> set[Path]:
    """The ferjax sources a DVC stage runs: its stage script's imports and its command's module."""
    script = ROOT / "stages" / f"{stage}.py"
    start = imported_modules(script) | {f"ferjax.cli.{STAGE_COMMANDS[stage]}"}
    return closure(start)


def declared(stage: str) -> list[Path]:
    with open(ROOT / "dvc.yaml") as f:
        deps = yaml.safe_load(f)["stages"][stage]["deps"]
    return [ROOT / d.rstrip("/") for d in deps if d.startswith("ferjax")]


def covers(dep: Path, path: Path) -> bool:
    return path == dep or dep in path.parents


@pytest.mark.parametrize("stage", ["prepare", "split", "stimuli", "simulate", "human", "train", "network",
                                   "attribute", "sanity", "faithfulness", "compare"])
def test_each_stage_depends_on_the_code_it_runs_and_no_more(stage):
    """dvc.yaml lists, for each stage, the ferjax sources it loads: a directory only where the stage loads every
    module in it, otherwise the files. So DVC re-runs a stage when, and only when, its code changes."""
    needed, deps = stage_files(stage), declared(stage)
    data = {".css", ".js", ".html"}   # package data read at run time
    missing = sorted(str(p.relative_to(ROOT)) for p in needed if not any(covers(d, p) for d in deps))
    assert not missing, f"dvc.yaml stage {stage} runs these but does not list them in deps: {missing}"
    for dep in deps:
        if dep.is_dir():
            inside = [p for p in dep.rglob("*") if p.is_file() and (p.suffix == ".py" or p.suffix in data)
                      and "__pycache__" not in p.parts]
            unused = sorted(str(p.relative_to(ROOT)) for p in inside if p.suffix == ".py" and p not in needed)
            assert not unused, f"stage {stage} lists {dep.relative_to(ROOT)}/ but does not run {unused}: list files"
        else:
            assert dep in needed, f"stage {stage} lists {dep.relative_to(ROOT)}, which it does not run"


def test_the_report_stylesheet_reruns_only_the_report():
    """Editing ferjax/report/style.css changes the deps of the stage that writes the report, and of no other."""
    style = PACKAGE / "report" / "style.css"
    with open(ROOT / "dvc.yaml") as f:
        stages = yaml.safe_load(f)["stages"]
    depending = sorted(s for s in stages for d in declared(s) if covers(d, style))
    assert depending == ["compare"]
