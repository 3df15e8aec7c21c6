"""Runs timm's own `tests/test_models.py` on T2T-ViT presets (see `run.sh` beside this file).

timm's suite parametrizes its tests with `timm.list_models(...)` at import time. This conftest,
imported by pytest before the suite, registers the presets (`import t2t_vit.timm`) and makes
`list_models` answer for three of them only, classed as timm classes its own ViTs:
- a ViT is "non-standard" (`vit_*` is one of the suite's `NON_STD_FILTERS`): its token output
  skips the tests of spatial `forward_features` and of the default `features_only` wrapper, and
  runs `test_model_default_cfgs_non_std` instead of `test_model_default_cfgs`;
- a ViT's module (`vision_transformer`) is one of `FEAT_INTER_FILTERS`: it runs the
  `forward_intermediates` tests and the `feature_cls="getter"` wrapper.

Tests that do not take one of the three presets (timm's own models by name) are deselected, and
so are the two kinds the issue allows, each with its reason below.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import pytest
import timm
import timm.models
import timm.models._registry as registry

import t2t_vit.timm  # noqa: F401  (registers the presets)

PRESETS = ("t2t_vit_7", "t2t_vit_t_14", "t2t_vit_14")

# timm's own classing of its ViTs: their name filter and their module.
VIT_NAME_FILTER = "vit_*"
VIT_MODULE = "vision_transformer"

DESELECTED = {
    # TorchScript: not supported; torch.export is the supported path (docs/interop.md).
    "torchscript": "TorchScript is not supported (torch.export is); see docs/interop.md",
    # These create the model with pretrained=True: the weights come from the network.
    "test_model_load_pretrained": "network: downloads the released weights",
    "test_model_features_pretrained": "network: downloads the released weights",
    "test_model_inference": "network: downloads timm's test weights",
}

_real_list_models = registry.list_models


def _patterns(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    return list(value)


def _matches(name: str, patterns: list[str]) -> bool:
    """A T2T-ViT name matches a filter as a timm ViT would: its own name, or `vit_*`."""
    base = name.split(".")[0]
    return any(p == VIT_NAME_FILTER or fnmatch.fnmatch(base, p) for p in patterns)


def list_models(
    filter: str | Iterable[str] = "",
    module: str | Iterable[str] = "",
    pretrained: bool = False,
    exclude_filters: str | Iterable[str] = "",
    name_matches_cfg: bool = False,
    include_tags: bool | None = None,
) -> list[str]:
    names = _real_list_models(
        "t2t_vit*",
        pretrained=pretrained,
        name_matches_cfg=name_matches_cfg,
        include_tags=include_tags,
    )
    names = [n for n in names if n.split(".")[0] in PRESETS]
    filters, excludes = _patterns(filter), _patterns(exclude_filters)
    modules = _patterns(module)
    if filters:
        names = [n for n in names if _matches(n, filters)]
    if modules and not any(fnmatch.fnmatch(VIT_MODULE, m) for m in modules):
        names = []
    return [n for n in names if not _matches(n, excludes)]


for _owner in (timm, timm.models, registry):
    _owner.list_models = list_models  # type: ignore[attr-defined]


# timm's own markers (its pyproject.toml declares them); pytest-timeout's `timeout` is not
# installed here and its marker is inert.
MARKERS = (
    "base",
    "cfg",
    "cfg_nonstd",
    "features",
    "forward",
    "backward",
    "torchscript",
    "fxforward",
    "fxbackward",
    "timeout",
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", f"{marker}: timm's marker")


def _reason(item: pytest.Item) -> str | None:
    name = item.originalname if isinstance(item, pytest.Function) else item.name
    if item.get_closest_marker("torchscript") or "torchscript" in name:
        return DESELECTED["torchscript"]
    if name in DESELECTED:
        return DESELECTED[name]
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    model = params.get("model_name")
    if not isinstance(model, str) or model.split(".")[0] not in PRESETS:
        return "not a T2T-ViT preset: this run covers the T2T-ViT presets only"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    reasons: dict[str, int] = {}
    for item in items:
        reason = _reason(item)
        if reason is None:
            kept.append(item)
        else:
            dropped.append(item)
            reasons[reason] = reasons.get(reason, 0) + 1
    items[:] = kept
    config.hook.pytest_deselected(items=dropped)
    for reason, count in sorted(reasons.items()):
        print(f"timm suite: deselected {count}: {reason}")
    print(f"timm suite: selected {len(kept)}: " + ", ".join(sorted(i.name for i in kept)))
