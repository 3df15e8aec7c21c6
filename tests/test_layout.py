"""The package tree shows its layering: each folder is one concern and imports only the
concerns below it, so a layer never reaches for weights and a model never for images."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import warnings
from pathlib import Path
from typing import Any

import pytest

import t2t_vit

SRC = Path(t2t_vit.__file__).parent

# Each concern and the concerns it may import; anything not named here is refused.
ALLOWED: dict[str, set[str]] = {
    "layers": set(),
    # The output guard: every writer's one check, below everything that writes.
    "output": set(),
    # Layer decay looks through wrappers as every other function does (models.wrappers).
    "training": {"models"},
    "models": {"layers"},
    "flops": {"layers"},
    "weights": {"layers", "models", "output"},
    "inference": {"layers", "models", "weights", "output"},
    "factory": {"models", "weights"},
    # The timm registration: presets, weights and create_model, under timm's names.
    "timm": {"models", "weights", "factory"},
    "cli": {"layers", "models", "weights", "inference", "factory", "flops", "cli", "output"},
    "__main__": {"cli"},
}
# The version is read from the package itself (its one source), at call time.
ROOT_NAMES_ALLOWED = {"__version__"}


def _concern(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "t2t_vit", module
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import of the package in `path`."""
    relative = path.relative_to(SRC).with_suffix("")
    package = ["t2t_vit", *relative.parts[:-1]]
    if relative.name == "__init__":
        package = ["t2t_vit", *relative.parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "t2t_vit":
                found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "t2t_vit"]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC) != Path("__init__.py"))


def test_top_level_shows_the_concerns_at_a_glance() -> None:
    entries = sorted(p.name for p in SRC.iterdir() if p.name != "__pycache__")
    assert entries == [
        "__init__.py",
        "__main__.py",
        "cli",
        "factory.py",
        "flops.py",
        "inference",
        "layers",
        "models",
        "output.py",
        "py.typed",
        "timm.py",
        "training.py",
        "weights",
    ]


def test_every_module_and_package_says_what_it_is_for() -> None:
    for path in _modules():
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{path.relative_to(SRC)} has no module docstring"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layering(path: Path) -> None:
    concern = path.relative_to(SRC).parts[0].removesuffix(".py")
    allowed = ALLOWED[concern] | {concern}
    for module, names in _imports(path):
        target = _concern(module)
        if target == "":
            assert set(names) <= ROOT_NAMES_ALLOWED, f"{path.name} imports {names} from t2t_vit"
            continue
        assert target in allowed, f"{path.relative_to(SRC)} ({concern}) imports {module}"


def test_the_layering_check_sees_a_violation() -> None:
    # The check above would catch a layer importing the weights side.
    block = SRC / "layers" / "block.py"
    assert ("t2t_vit.layers.attention", ["Attention"]) in _imports(block)
    assert "weights" not in ALLOWED["layers"]
    assert _concern("t2t_vit.weights.hub") == "weights"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("convert", "t2t_vit.weights.convert"),
        ("model", "t2t_vit.models.t2t_vit"),
        ("attention", "t2t_vit.layers.attention"),
        ("preprocess", "t2t_vit.inference.preprocess"),
        ("release", "t2t_vit.weights.release"),
    ],
)
def test_module_paths_of_0_1_still_import(old: str, new: str) -> None:
    assert importlib.import_module(f"t2t_vit.{old}") is importlib.import_module(new)
    # `from t2t_vit.convert import infer_model_args` style imports keep working too.
    namespace: dict[str, Any] = {}
    exec(f"from t2t_vit.{old} import __name__ as moved_name", namespace)
    assert namespace["moved_name"] == new


def test_a_moved_module_reached_as_an_attribute_warns_with_its_new_path() -> None:
    moved = r"t2t_vit.convert moved to t2t_vit.weights.convert"
    with pytest.warns(DeprecationWarning, match=moved):
        module = t2t_vit.convert  # type: ignore[attr-defined]
    assert module.infer_model_args is t2t_vit.infer_model_args
    # Public functions that share a 0.1 module's name are still the functions.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert callable(t2t_vit.preprocess)
        assert callable(t2t_vit.predict)
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        _ = t2t_vit.nonexistent  # type: ignore[attr-defined]


def test_the_registry_names_import_from_t2t_vit_weights_as_in_0_1() -> None:
    from t2t_vit.weights import WEIGHTS, get_weights

    assert WEIGHTS is t2t_vit.WEIGHTS
    assert get_weights is t2t_vit.get_weights


def test_version_has_one_source() -> None:
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert "\nversion =" not in pyproject
    assert 'path = "src/t2t_vit/__init__.py"' in pyproject
    assert t2t_vit.__version__ == importlib.metadata.version("t2t-vit")
