"""Every ``>>>`` example in gsoplib's docstrings runs and is true (the documentation site renders
them under "Examples"): a module per test, so a failure names its module."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import gsoplib

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(gsoplib.__path__, "gsoplib.")
    if not m.name.startswith("gsoplib.explorer") and not m.name.endswith(".__main__")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


WITH_EXAMPLES = [name for name in MODULES if _examples(name)]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_are_true(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_found():
    """The public modules that show their use in examples: a finder that silently found none
    would make the test above vacuous."""
    assert {"gsoplib.probe", "gsoplib.train", "gsoplib.pretrained", "gsoplib.models.factory",
            "gsoplib.images", "gsoplib.heads.gate_analysis"} <= set(WITH_EXAMPLES)
