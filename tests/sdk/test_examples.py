"""The SDK example of each catalog entry is valid Python that passes exactly the example's input."""

from __future__ import annotations

import ast

import pytest

from imagehub.catalog import Catalog
from imagehub.client.examples import python_example

CATALOG = Catalog.load()


@pytest.mark.parametrize("model", list(CATALOG), ids=lambda m: m.id)
def test_the_python_example_calls_generate_with_the_catalog_example(model):
    tree = ast.parse(python_example(model.id, model.example))
    [call] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "generate"
    ]
    assert [ast.literal_eval(arg) for arg in call.args] == [model.id]
    assert {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords} == model.example


def test_every_json_value_becomes_the_same_python_value():
    params = {
        "s": 'a "quoted" \\ line\nnext ✓',
        "b": False,
        "n": None,
        "i": 3,
        "f": 0.5,
        "l": ["x", 1],
        "d": {"width": 16, "height": 32},
    }
    tree = ast.parse(python_example("m", params))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords)
    assert {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords} == params
