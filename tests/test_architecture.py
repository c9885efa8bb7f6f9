"""The import contract of the package (.importlinter) holds, and breaks when it should.

Imports run one way (docs/architecture.md, "The package's layers"): an upward import or an import
circle anywhere in `ssma_tf` fails `make test`. The contract is checked on this checkout, then on
copies of the package with a bad import added, so that the check itself is known to work.
"""

import ast
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Run in a fresh interpreter whose `ssma_tf` is the one under the given folder (grimp reads the
# package's files from where Python would import it). Prints the cycles, then lint-imports' report.
_CHECK = r"""
import sys

import grimp
from importlinter.cli import lint_imports

graph = grimp.build_graph("ssma_tf", cache_dir=None)
cycles = set()
for importer in sorted(graph.modules):
    for imported in sorted(graph.find_modules_directly_imported_by(importer)):
        back = graph.find_shortest_chain(importer=imported, imported=importer)
        if back:
            cycles.add(" -> ".join((importer,) + tuple(back)))
for cycle in sorted(cycles):
    print("CYCLE", cycle)
status = lint_imports(config_filename=".importlinter", no_cache=True)
sys.exit(1 if cycles else status)
"""


def _check(root):
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [sys.executable, "-c", _CHECK], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def _copy(tmp_path):
    shutil.copytree(ROOT / "ssma_tf", tmp_path / "ssma_tf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _add_import(root, module, line):
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_package_keeps_its_import_contract_and_has_no_circle():
    result = _check(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "CYCLE" not in result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # A layer reaching up into the training loop.
        ("ssma_tf.layers.conv_bn", "import ssma_tf.training", "The package's layers"),
        # The rewrites reaching up into the predictor, inside the inference package.
        ("ssma_tf.inference.rewrites", "import ssma_tf.inference.predictor", "ssma_tf.inference:"),
        # Config reading importing TensorFlow.
        ("ssma_tf.config.reader", "import tensorflow", "imports neither TensorFlow"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    _add_import(root, module, line)
    result = _check(root)
    assert result.returncode != 0
    assert broken in result.stdout and "BROKEN" in result.stdout, result.stdout[-3000:]


def test_an_import_circle_is_found_where_no_layer_forbids_it(tmp_path):
    # `data.schema` and `data.pipeline` share a layer of the contract; pipeline imports schema.
    root = _copy(tmp_path)
    _add_import(root, "ssma_tf.data.schema", "import ssma_tf.data.pipeline")
    result = _check(root)
    assert result.returncode != 0
    assert "CYCLE ssma_tf.data.pipeline -> ssma_tf.data.schema -> ssma_tf.data.pipeline" in result.stdout, (
        result.stdout[-3000:] + result.stderr[-3000:]
    )


@pytest.mark.parametrize("module", ["inference/sizes", "inference/rewrites", "inference/batch_norm_folding",
                                    "inference/compiled", "inference/precision", "layers/batch_norm",
                                    "layers/dropout"])
def test_the_inference_rewrites_import_tensorflow_only_inside_functions(module):
    # `bench/inference.py --backend jax` runs them where TensorFlow is not imported.
    tree = ast.parse((ROOT / "ssma_tf" / f"{module}.py").read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(n) for function in functions for n in ast.walk(function)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in inside:
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(name.split(".")[0] == "tensorflow" for name in names), (module, node.lineno)


# --- A newcomer's map: docstrings and the contract name every module --------------------------

PACKAGE = ROOT / "ssma_tf"


def _docstring(path):
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def _modules(package):
    """The modules and subpackages directly in a package folder, by name."""
    files = [p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
    folders = [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
    return sorted(files + folders)


def test_every_module_says_what_it_holds():
    silent = [path.relative_to(ROOT).as_posix() for path in sorted(PACKAGE.rglob("*.py"))
              if len(_docstring(path).split("\n")[0].split()) < 4]
    assert silent == [], "modules without a docstring that says what they hold"


@pytest.mark.parametrize("package", sorted(p.parent for p in PACKAGE.glob("*/__init__.py")),
                         ids=lambda p: p.name)
def test_every_package_docstring_names_its_modules(package):
    doc = _docstring(package / "__init__.py")
    missing = [name for name in _modules(package) if f"`{name}`" not in doc and f"`{name}.py`" not in doc]
    assert missing == [], f"ssma_tf/{package.name}/__init__.py: the docstring does not name {missing}"


def test_the_root_docstring_points_to_the_layer_diagram():
    assert "docs/architecture.md" in _docstring(PACKAGE / "__init__.py")


def _contract_layers():
    """Each layers contract of .importlinter: (container or None, the module names of its layers)."""
    import configparser
    import re

    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter", encoding="utf-8")
    contracts = []
    for section in parser.sections():
        if section.startswith("importlinter:contract:") and parser[section].get("type") == "layers":
            names = re.split(r"[\s|:()]+", parser[section]["layers"])
            contracts.append((parser[section].get("containers"), {name for name in names if name}))
    return contracts


def test_every_module_of_a_layered_package_has_its_place_in_the_contract():
    # import-linter checks only the modules a contract lists: one left out may import anything.
    contracts = _contract_layers()
    assert len(contracts) >= 4
    for container, names in contracts:
        if container is None:
            expected = {f"ssma_tf.{name}" for name in _modules(PACKAGE)}
        else:
            expected = set(_modules(PACKAGE.joinpath(*container.split(".")[1:])))
        assert expected - names == set(), f".importlinter, {container or 'ssma_tf'}: no place for {expected - names}"
