"""Structure of the teaching notebooks (issue 7); their outputs are checked by nbval.

Every notebook in ``notebooks/`` opens with "Learning goals" and closes with "Summary" and
"Exercises" (each exercise a "### Exercise N" heading and a code cell with a TODO stub); a
solutions notebook in ``notebooks/solutions/`` answers every exercise with a "### Solution N".
All notebooks are committed executed top to bottom without errors, cells whose output is not
compared assert something, and no notebook defines library code: notebooks explain, gsoplib
implements.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import nbformat
import pytest

from gsoplib.viz.charts.spec import MIMETYPE

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
EXPECTED = [
    "01_covariance_pooling",
    "02_matrix_square_root",
    "03_gsop_block",
    "04_gated_mixture",
    "05_training",
    "06_inspecting",
]
# A function in a notebook may be a small callback (a hook, a plotting helper); anything longer
# is library code and belongs in gsoplib.
MAX_DEF_LINES = 6
FAST_READ = 'os.environ.get("GSOP_FAST", "1") == "1"'
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.MULTILINE)
# nbval reads its markers from any comment line of a cell, not only the first.
IGNORE_OUTPUT = re.compile(r"^\s*#+\s*NBVAL_IGNORE_OUTPUT\s*$", re.MULTILINE)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _headings(nb) -> list[tuple[int, int, str]]:
    """(cell index, level, text) of every markdown heading, in order."""
    return [
        (i, len(m.group(1)), m.group(2))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for m in HEADING.finditer(cell.source)
    ]


def _numbered(nb, word: str) -> list[int]:
    return [int(m.group(1)) for _, level, text in _headings(nb)
            if level == 3 and (m := re.fullmatch(rf"{word} (\d+)", text))]


def library_code(source: str) -> list[str]:
    """What in a code cell's source is library code: classes, and functions longer than
    MAX_DEF_LINES lines. IPython magics and shell lines are dropped before parsing."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.ClassDef):
            found.append(f"class {node.name}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_DEF_LINES:
                found.append(f"def {node.name} ({length} lines)")
    return found


def _main_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _all_paths() -> list[Path]:
    return _main_paths() + sorted(SOLUTIONS.glob("*.ipynb"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(NOTEBOOKS)) for p in paths]


def test_the_six_notebooks_in_order():
    assert [p.stem for p in _main_paths()] == EXPECTED


def test_sanitizer_config_is_valid():
    config = configparser.ConfigParser()
    assert config.read(NOTEBOOKS / "nbval_sanitize.cfg"), "notebooks/nbval_sanitize.cfg is missing"
    assert config.sections()
    for section in config.sections():
        re.compile(config[section]["regex"])
        assert "replace" in config[section], f"section {section!r} has no replace"


@pytest.mark.parametrize("path", _main_paths(), ids=_ids(_main_paths()))
def test_goals_summary_and_exercises(path):
    nb = _read(path)
    headings = _headings(nb)
    texts = [text for _, _, text in headings]
    assert headings and headings[0][1] == 1, "the notebook opens with a title"
    first_markdown = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"][:2]
    assert any(i in first_markdown and t == "Learning goals" for i, _, t in headings), (
        "'Learning goals' is a heading in the opening markdown"
    )
    assert "Summary" in texts and "Exercises" in texts
    assert texts.index("Summary") < texts.index("Exercises")
    after = headings[texts.index("Exercises") + 1:]
    assert all(level >= 3 for _, level, _ in after), "nothing but exercises after 'Exercises'"


@pytest.mark.parametrize("path", _main_paths(), ids=_ids(_main_paths()))
def test_exercises_have_todo_stubs_and_solutions(path):
    nb = _read(path)
    numbers = _numbered(nb, "Exercise")
    assert numbers and numbers == list(range(1, len(numbers) + 1)), "Exercise 1, 2, ... in order"
    starts = [i for i, level, text in _headings(nb) if level == 3 and text.startswith("Exercise ")]
    for n, start, end in zip(numbers, starts, starts[1:] + [len(nb.cells)]):
        stubs = [c for c in nb.cells[start + 1:end] if c.cell_type == "code" and "TODO" in c.source]
        assert stubs, f"exercise {n} has no code cell with a TODO stub"
    solutions = SOLUTIONS / f"{path.stem}_solutions.ipynb"
    assert solutions.exists(), f"{solutions.name} is missing"
    assert sorted(_numbered(_read(solutions), "Solution")) == numbers


def test_every_solutions_notebook_belongs_to_a_notebook():
    stems = {p.stem for p in _main_paths()}
    for path in SOLUTIONS.glob("*.ipynb"):
        assert path.stem.removesuffix("_solutions") in stems, f"{path.name} answers no notebook"


@pytest.mark.parametrize("path", _all_paths(), ids=_ids(_all_paths()))
def test_committed_executed_without_errors(path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert all(isinstance(n, int) for n in counts), "every code cell has been executed"
    assert counts == list(range(1, len(counts) + 1)), (
        f"executed once, top to bottom, in a fresh kernel: execution counts {counts}"
    )
    for i, cell in enumerate(code):
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} stored an error: {out.get('ename')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text, f"code cell {i} printed a traceback"


@pytest.mark.parametrize("path", _all_paths(), ids=_ids(_all_paths()))
def test_no_library_code_and_asserted_ignored_outputs(path):
    nb = _read(path)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any(re.search(r"^\s*(from|import) gsoplib", s, re.MULTILINE) for s in sources), (
        "the notebook uses gsoplib"
    )
    for i, source in enumerate(sources):
        found = library_code(source)
        assert not found, f"code cell {i} defines library code: {', '.join(found)}"
        if IGNORE_OUTPUT.search(source):
            assert re.search(r"^\s*assert ", source, re.MULTILINE), (
                f"code cell {i} ignores its output but asserts nothing"
            )
        if "GSOP_FAST" in source:
            assert FAST_READ in source, f"code cell {i} reads GSOP_FAST another way"


def test_library_code_rule_catches_classes_and_long_functions():
    module = "from torch import nn\n\nclass Net(nn.Module):\n    pass\n"
    long_def = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(8)) + "    return x\n"
    short_def = "def pack(t):\n    seen.append(t)\n    return t\n"
    assert library_code(module) == ["class Net"]
    assert library_code(long_def) == ["def f (10 lines)"]
    assert library_code(short_def) == []
    assert library_code("%matplotlib inline\nx = 1\n") == []


# Issue 15, notebooks 01-03: exercises that derive or implement, and widgets with a static figure.
DERIVING = re.compile(r"^\*(Derive|Implement|Derive and implement)\.\*", re.MULTILINE)
LESSON_WIDGETS = {
    "01_covariance_pooling": ["lessons_covariance.probe_and_rank_view"],
    "02_matrix_square_root": ["newton.cobweb", "newton.ns_explorer", "newton.backward_memory"],
    "03_gsop_block": ["lessons_block.placement_view", "lessons_block.block_view"],
    "04_gated_mixture": ["lessons_mixture.router_view", "lessons_mixture.toy_view"],
    "05_training": ["lessons_training.warmup_view"],
    "06_inspecting": ["lessons_inspecting.baseline_view"],
}


@pytest.mark.parametrize("stem", EXPECTED[:3])
def test_at_least_two_exercises_derive_or_implement(stem):
    nb = _read(NOTEBOOKS / f"{stem}.ipynb")
    exercises = [c.source for c in nb.cells if c.cell_type == "markdown"
                 and re.match(r"### Exercise \d+", c.source)]
    deriving = [s for s in exercises if DERIVING.search(s)]
    assert len(deriving) >= 2, (
        f"{stem}: {len(deriving)} of {len(exercises)} exercises derive or implement"
    )


@pytest.mark.parametrize("stem", sorted(LESSON_WIDGETS))
def test_each_widget_has_a_static_figure_before_it(stem):
    code = [c.source for c in _read(NOTEBOOKS / f"{stem}.ipynb").cells if c.cell_type == "code"]
    for callback in LESSON_WIDGETS[stem]:
        widget = [i for i, s in enumerate(code) if f"interactive(\n    {callback}," in s
                  or f"interactive({callback}," in s]
        assert len(widget) == 1, f"{callback}: one widget cell, found {len(widget)}"
        i = widget[0]
        assert IGNORE_OUTPUT.search(code[i]) and "assert isinstance(" in code[i]
        assert code[i - 1].strip().startswith(f"{callback}("), (
            f"{callback}: the cell before the widget draws its static figure"
        )


def test_notebook_02_widgets_recompute_when_a_knob_moves(monkeypatch):
    """Run notebook 02's widget cells as JupyterLab would and move one control of each."""
    monkeypatch.chdir(NOTEBOOKS)
    code = [c.source for c in _read(NOTEBOOKS / "02_matrix_square_root.ipynb").cells
            if c.cell_type == "code"]
    namespace: dict = {"display": lambda *objects: None}
    exec("\n".join(line for line in code[0].splitlines() if not line.startswith("%")), namespace)
    for source in code:
        if "interactive(" in source:
            exec(source, namespace)
    cobweb, explorer = namespace["cobweb_widget"], namespace["explorer"]
    calculator = namespace["calculator"]
    controls = {w.description: w for w in cobweb.children if hasattr(w, "description")}
    controls["lam"].value = 6.0
    assert cobweb.result.axes[0].get_title() == "lambda = 6: diverges"
    controls = {w.description: w for w in explorer.children if hasattr(w, "description")}
    assert explorer.result.axes[0].get_title() == "trace: below tol at N = 14"
    controls["prenormalisation"].value = "none"
    assert explorer.result.axes[0].get_title() == "none: not below tol in 20"
    preset = namespace["preset"]
    preset.value = list(namespace["PAPER_SCALES"])[1]
    assert calculator.result.axes[0].get_title() == "batch 160, 256 x 256, N = 5: 15x less"


# Notebooks 04-06 (issue 15): exercises that derive or implement, widgets with a static figure.
LATER = ["04_gated_mixture", "05_training", "06_inspecting"]
KIND = re.compile(r"^\*\((Derivation|Implementation)\.\)\*")


def _exercise_texts(nb) -> list[str]:
    """The markdown below each "### Exercise N" heading, heading removed."""
    return [cell.source.split("\n", 1)[1].lstrip() for cell in nb.cells
            if cell.cell_type == "markdown" and re.match(r"### Exercise \d+\n", cell.source)]


@pytest.mark.parametrize("stem", LATER)
def test_later_notebooks_have_two_exercises_that_derive_or_implement(stem):
    texts = _exercise_texts(_read(NOTEBOOKS / f"{stem}.ipynb"))
    kinds = [m.group(1) for text in texts if (m := KIND.match(text))]
    assert len(kinds) >= 2, f"{stem}: exercises marked as derivation or implementation: {kinds}"
    solutions = _read(SOLUTIONS / f"{stem}_solutions.ipynb")
    assert all(isinstance(c.execution_count, int) for c in solutions.cells if c.cell_type == "code")


# Issue 19: the notebooks show the explorer's interactive charts, stored in the committed file.
CHART_MIME = MIMETYPE


def test_notebook_06_embeds_the_interactive_charts_as_vega_lite():
    """JupyterLab renders these outputs itself (no script fetched): each one is a stored
    Vega-Lite spec with its data inline, built by gsoplib.viz.charts in a cell that asserts
    the chart's numbers are the probe's."""
    nb = _read(NOTEBOOKS / "06_inspecting.ipynb")
    shown = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            spec = out.get("data", {}).get(CHART_MIME)
            if spec is not None:
                assert "charts." in cell.source and re.search(r"^assert ", cell.source,
                                                               re.MULTILINE)
                assert spec["datasets"] and all(spec["datasets"].values())
                shown[re.findall(r"charts\.(\w+_chart)\(", cell.source)[0]] = spec
    assert set(shown) >= {"channel_weights_chart", "batch_heatmap_chart",
                          "position_weights_chart", "covariance_chart", "gate_chart"}
    params = [p["name"] for p in shown["channel_weights_chart"]["params"]]
    assert params == ["channels"]
    assert any(p.get("bind", {}).get("input") == "range"
               for p in shown["position_weights_chart"]["params"])
