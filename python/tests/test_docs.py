"""Every public function has a docstring that opens with its signature and a .pyi stub entry, so
that help() and type checkers describe the same API the module exports."""

import ast
import pathlib

import pytest

import prefopt

PACKAGE = pathlib.Path(prefopt.__file__).parent


def public(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def stub_functions(name):
    tree = ast.parse((PACKAGE / f"{name}.pyi").read_text())
    return sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef))


@pytest.mark.parametrize("name", ["kernels", "losses"])
def test_every_function_has_a_stub_and_a_docstring_with_its_signature(name):
    module = getattr(prefopt, name)
    assert public(module) == stub_functions(name)
    for fn in public(module):
        doc = getattr(module, fn).__doc__
        assert doc.startswith(fn + "("), fn


def test_help_of_token_log_probs_states_shapes_dtypes_and_errors():
    doc = prefopt.kernels.token_log_probs.__doc__
    for fact in ("[N, V]", "float32", "float64", "int32", "int64", "[0, V)", "prefopt.DTypeError",
                 "prefopt.ShapeError", "prefopt.InvalidArgument", "GIL"):
        assert fact in doc, fact


def test_the_package_stub_lists_every_exported_name():
    tree = ast.parse((PACKAGE / "__init__.pyi").read_text())
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            declared.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            declared.update(a.asname or a.name for a in node.names)
    assert declared == set(prefopt.__all__)
