"""Every public function has a docstring that opens with its signature and a .pyi stub entry, so
that help() and type checkers describe the same API the module exports."""

import ast
import pathlib

import pytest

import prefopt

PACKAGE = pathlib.Path(prefopt.__file__).parent


def public(module):
    return sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))


def stub_definitions(name):
    """The functions and classes the stub of a submodule declares, and each class's members."""
    tree = ast.parse((PACKAGE / f"{name}.pyi").read_text())
    names = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
    members = {n.name: sorted(m.name for m in n.body
                              if isinstance(m, ast.FunctionDef) and not m.name.startswith("_"))
               for n in tree.body if isinstance(n, ast.ClassDef)}
    return names, members


SUBMODULES = ["kernels", "losses", "games", "diagnostics", "solvers", "arena"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_every_function_has_a_stub_and_a_docstring_with_its_signature(name):
    module = getattr(prefopt, name)
    names, members = stub_definitions(name)
    assert public(module) == names
    for fn in public(module):
        doc = getattr(module, fn).__doc__
        assert doc.startswith(fn + "("), fn
    for cls, declared in members.items():
        attrs = sorted(n for n in vars(getattr(module, cls)) if not n.startswith("_"))
        assert attrs == declared, cls
        for attr in attrs:
            assert getattr(module, cls).__dict__[attr].__doc__, f"{cls}.{attr}"


def test_every_submodule_is_importable_by_name():
    import importlib

    for name in SUBMODULES:
        assert importlib.import_module("prefopt." + name) is getattr(prefopt, name)


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
