"""The README and docs/ say what the code and its measurements say.

A figure that a document quotes about fidelity, speed or a result carries its
source right after it, as an HTML comment (invisible when the page renders):

    0.866<!-- metrics/simulate.json: percent_correct -->
    78%<!-- metrics/compare.json: robustness/first_among_methods/EP ×100 -->
    6 min 42 s<!-- benchmarks/fresh_clone.json: commands/0/seconds -->
    3.8 ms<!-- benchmarks/experiment_load.txt: re:median ([\\d.]+) ms -->

The source is a file that a stage (``metrics/``) or a benchmark
(``benchmarks/``) writes; the key is a ``/``-separated path into its JSON
(list items by index), or ``re:`` and a regular expression whose first group
is read from a text file. ``×100`` scales the value first. The quoted figure
must equal the source's value rounded to the figure's own last digit (a
"0.866" may stand for 0.8655 to 0.8665); "6 min 42 s" to the second.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

TIE = re.compile(r"<!--\s*(?P<path>[\w./-]+\.(?:json|txt|md)):\s*(?P<key>.+?)(?:\s+×(?P<scale>[\d.]+))?\s*-->")
MINUTES = re.compile(r"(?:(\d+) h )?(\d+) min (\d+) s\**\s*$")
# a minus sign only where it cannot be a range's dash ("0.77-0.90")
NUMBER = re.compile(r"(?<![\w.])((?:(?<![\w>)])-)?\d[\d,]*(?:\.\d+)?)(?:\s*(?:%|x|×|s|ms|h|min|images/s|GFLOP/s))?\**\s*$")


def value_of(source: Path, key: str) -> float:
    text = source.read_text()
    if key.startswith("re:"):
        found = re.search(key[3:], text)
        if not found:
            raise KeyError(f"no match for {key[3:]!r}")
        return float(found.group(1).replace(",", ""))
    node = json.loads(text)
    for part in key.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return float(node)


def problems(text: str, where: str = "") -> list[str]:
    """Every tied figure in ``text`` that its source does not bear out (or whose source cannot be read)."""
    out = []
    for tie in TIE.finditer(text):
        before = text[:tie.start()]
        line = before.count("\n") + 1
        label = f"{where}:{line}: {tie.group(0)}"
        try:
            value = value_of(ROOT / tie.group("path"), tie.group("key").strip())
        except (OSError, KeyError, IndexError, ValueError, TypeError) as err:
            out.append(f"{label}: cannot read the source ({type(err).__name__}: {err})")
            continue
        value *= float(tie.group("scale") or 1)
        clock = MINUTES.search(before)
        if clock:
            hours, minutes, seconds = (int(g or 0) for g in clock.groups())
            shown, half = hours * 3600 + minutes * 60 + seconds, 0.5
        else:
            number = NUMBER.search(before)
            if not number:
                out.append(f"{label}: no figure right before the source")
                continue
            digits = Decimal(number.group(1).replace(",", ""))
            shown, half = float(digits), 0.5 * 10.0 ** digits.as_tuple().exponent
        if abs(shown - value) > half * (1 + 1e-9):
            out.append(f"{label}: the document says {shown:g}, the source {value:g}")
    return out


def test_every_quoted_figure_matches_its_source():
    found = [p for doc in DOCS for p in problems(doc.read_text(), str(doc.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def test_the_check_catches_a_figure_edited_by_hand():
    text = (ROOT / "docs" / "study.md").read_text()
    tie = next(TIE.finditer(text))
    number = NUMBER.search(text[:tie.start()])
    edited = text[:number.start(1)] + str(Decimal(number.group(1).replace(",", "")) + 1) + text[number.end(1):]
    assert problems(text) == [] and len(problems(edited)) == 1


@pytest.mark.parametrize("figure, source, key, ok", [
    ("0.866", {"v": 0.8655}, "v", True), ("0.866", {"v": 0.8654}, "v", False),
    ("78%", {"v": 0.7843}, "v ×100", True), ("1,080", {"v": 1080}, "v", True),
    ("6 min 42 s", {"v": [402.4]}, "v/0", True), ("6 min 42 s", {"v": [404]}, "v/0", False),
])
def test_a_figure_stands_for_its_source_rounded_to_its_last_digit(tmp_path, figure, source, key, ok):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(source))
    text = f"{figure}<!-- {path}: {key} -->"
    assert (problems(text) == []) == ok


def test_the_readme_starts_in_one_screen_and_links_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 220
    first_screen = "\n".join(readme.splitlines()[:45])
    assert "dvc repro" in first_screen and "pytest" in first_screen
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def test_links_between_pages_lead_somewhere():
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http", "mailto:")):
                assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_the_python_in_the_docs_names_what_ferjax_has():
    """Every ferjax import in a ```python block works, and every ``module.name`` it calls exists."""
    import ast
    import importlib

    checked = 0
    for doc in DOCS:
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S):
            modules = {}
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "ferjax":
                    parent = importlib.import_module(node.module)
                    for alias in node.names:
                        module = ROOT.joinpath(*node.module.split("."), alias.name)
                        if module.with_suffix(".py").exists() or (module / "__init__.py").exists():
                            modules[alias.asname or alias.name] = importlib.import_module(
                                f"{node.module}.{alias.name}")
                        else:
                            assert hasattr(parent, alias.name), f"{doc.name}: {node.module} has no {alias.name}"
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.value.id in modules:
                    assert hasattr(modules[node.value.id], node.attr), \
                        f"{doc.name}: {node.value.id}.{node.attr} does not exist"
                    checked += 1
    assert checked >= 5
