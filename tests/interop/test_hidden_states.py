"""transformers' `TimmBackbone(...)(x, output_hidden_states=True)` (issue 23, item 15): every
level as a hidden state, through the `return_layers` attribute the feature model reads.

Interop test: it runs in CI's interop venv (`pytest -m interop`); a missing package there
fails the import, never skips."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import t2t_vit

pytestmark = pytest.mark.interop


def _backbone(**config: Any) -> Any:
    """transformers' `TimmBackbone` on a T2T-ViT preset (imported here: the main test run
    collects this file without transformers or timm installed)."""
    from transformers import AutoBackbone, TimmBackboneConfig

    import t2t_vit.timm  # noqa: F401  (registers the presets with timm)

    return AutoBackbone.from_config(TimmBackboneConfig(**config))


def test_output_hidden_states_gives_every_level_and_the_same_feature_maps() -> None:
    torch.manual_seed(0)
    backbone = _backbone(backbone="t2t_vit_7", out_indices=(0, 1, -1)).eval()
    features = backbone._backbone
    assert isinstance(features, t2t_vit.T2TFeatures)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = backbone(x, output_hidden_states=True)
        plain = backbone(x)
        every = features.forward_intermediates(x, indices=list(range(4)))
    assert out.hidden_states is not None
    # timm's features_only gives the pyramid: one level per stride (4, 8, 16, 32).
    assert len(out.hidden_states) == len(features.feature_info.info) == 4
    assert all(torch.equal(h, e) for h, e in zip(out.hidden_states, every, strict=True))
    assert [tuple(f.shape) for f in out.feature_maps] == [
        (2, 64, 16, 16),
        (2, 64, 8, 8),
        (2, 256, 2, 2),
    ]
    assert all(torch.equal(a, b) for a, b in zip(out.feature_maps, plain.feature_maps, strict=True))


@pytest.mark.parametrize(
    ("out_indices", "stop"),
    [((0, 1), r"1 \(tokens_to_token\.attention2\)"), ((0, 1, 2), r"2 \(blocks\.6\)")],
    ids=["stem-only", "without-the-pooled-level"],
)
def test_output_hidden_states_of_a_backbone_without_every_level_is_refused_in_one_line(
    out_indices: tuple[int, ...], stop: str
) -> None:
    # (0, 1, 2): the last block is built, the pooled level (`downsample`) is not; this
    # was an AttributeError from inside the feature model.
    backbone = _backbone(backbone="t2t_vit_7", out_indices=out_indices).eval()
    with pytest.raises(
        ValueError,
        match=r"^indices \[0, 1, 2, 3\] reach level 3 \(downsample\) but this "
        rf"feature model stops at level {stop}; select deeper "
        r"levels with out_indices when you build it$",
    ):
        backbone(torch.randn(1, 3, 64, 64), output_hidden_states=True)
