"""The package's imports run one way: layers and model know nothing of weights, and the
weights side (registry, download, conversion, cache, Hub I/O) builds on the model."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import t2t_vit

PACKAGE = Path(t2t_vit.__file__).parent

#: Modules that know nothing of weights: the layers, the model, presets, inference helpers.
MODEL_SIDE = {
    "attention", "block", "pos_embed", "token_transformer", "token_performer", "t2t_module",
    "model", "presets", "pretrained_cfg", "flops", "training", "preprocess", "labels",
    "predict", "evaluate", "visualize", "features", "neck",
}  # fmt: skip
#: Modules of the weights side.
WEIGHTS_SIDE = {
    "errors", "weights", "convert", "serialization", "checkpoint", "release", "hub",
    "pretrained", "publish", "factory",
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def _imports(path: Path) -> set[str]:
    """The package modules a file imports, at module level or inside functions."""
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:
                found |= {".".join([*base, a.name]) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("t2t_vit."):
            found.add(node.module.removeprefix("t2t_vit."))  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("t2t_vit.") for a in node.names if a.name.startswith("t2t_vit.")
            }
    known = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in known and m != _module_name(path)}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_is_placed_on_one_side_or_is_an_entry_point() -> None:
    entry_points = {"__init__", "__main__", "cli", "cli.convert", "cli.inference", "cli.publish"}
    assert set(_graph()) - entry_points - MODEL_SIDE - WEIGHTS_SIDE == set()
    assert MODEL_SIDE.isdisjoint(WEIGHTS_SIDE)


def test_the_model_side_imports_nothing_of_the_weights_side() -> None:
    graph = _graph()
    wrong = {m: sorted(graph[m] & WEIGHTS_SIDE) for m in MODEL_SIDE if graph[m] & WEIGHTS_SIDE}
    assert wrong == {}


def test_imports_have_no_cycle_even_inside_functions() -> None:
    graph = _graph()
    graph.pop("__init__")  # it re-exports everything and is imported by nothing here
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None
    assert order.index("model") < order.index("serialization") < order.index("pretrained")
