"""docs/api.md documents every public name exactly once, and each `:::` reference names the
object that `t2t_vit.<name>` is (not a submodule that shares its name)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import t2t_vit

API = Path(__file__).parents[1] / "docs" / "api.md"


def _references() -> list[str]:
    return re.findall(r"^::: (\S+)$", API.read_text(), re.M)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent is a module, not a package
        return False


def _resolve(path: str) -> Any:
    # The longest importable prefix is the module; the rest are attributes of it.
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        if _is_module(module_name):
            obj: Any = importlib.import_module(module_name)
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
    raise AssertionError(f"{path} does not resolve")


def test_api_page_references_resolve_to_the_exported_objects() -> None:
    refs = _references()
    documented = {}
    for ref in refs:
        name = ref.rsplit(".", 1)[1]
        assert name in t2t_vit.__all__, f"{ref} is not a public name"
        # mkdocstrings (griffe) reads `t2t_vit.predict` as the submodule, not the function.
        assert _resolve(ref) is getattr(t2t_vit, name), f"{ref} is not t2t_vit.{name}"
        documented[name] = ref
    assert len(documented) == len(refs), "a name is documented twice"
    assert sorted(documented) == sorted(t2t_vit.__all__)


def test_names_shadowing_submodules_are_referenced_through_their_module() -> None:
    shadowing = {name for name in t2t_vit.__all__ if _is_module(f"t2t_vit.{name}")}
    assert shadowing == {"evaluate", "predict", "preprocess", "publish"}
    refs = set(_references())
    for name in shadowing:
        assert f"t2t_vit.{name}.{name}" in refs
        assert f"t2t_vit.{name}" not in refs
