"""FX: torchvision's `create_feature_extractor` traces the classifier and the feature model
(symbolically, through the input checks) and gives eager's tensors at any input size.

Interop test: it runs in CI's interop venv (`pytest -m interop`), where torchvision is
installed; a missing package there fails the import, never skips."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from t2t_vit import T2TViT, create_feature_model, use_packed_linear

pytestmark = pytest.mark.interop

TINY = dict(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10)
SIZES = ((32, 32), (48, 80), (61, 37))


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_create_feature_extractor_gives_the_stem_block_and_logits_of_eager(
    tokens_type: str,
) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    # Stochastic depth on: the training-mode graph torchvision also traces has it.
    model = T2TViT(tokens_type=tokens_type, drop_path_rate=0.1, **TINY).eval()
    extractor = create_feature_extractor(
        model,
        return_nodes={"tokens_to_token.attention1": "stem", "blocks.1": "block", "head": "logits"},
    )
    features = create_feature_model(model, out_indices=(0, -1))
    # The graph calls each `nn.Linear`; bit-equality needs eager on that GEMM too, not the
    # packed one of CPU inference (tests/test_packed_linear.py: equal to rounding).
    use_packed_linear(model, False)
    for height, width in SIZES:
        x = torch.randn(2, 3, height, width)
        with torch.no_grad():
            out = extractor(x)
            stem, block = features(x)
            logits = model(x)
        assert torch.equal(out["logits"], logits)
        assert torch.equal(out["stem"], rearrange(stem, "b c h w -> b (h w) c"))
        assert torch.equal(rearrange(out["block"][:, 1:], "b n c -> b c n"), block.flatten(2))


def test_create_feature_extractor_on_the_feature_model_returns_its_maps() -> None:
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    features = create_feature_model(T2TViT(**TINY)).eval()
    use_packed_linear(features, False)  # bit-equality with the traced graph, as above
    # Each map is made contiguous last: those nodes are the maps.
    _, nodes = get_graph_node_names(features)
    maps = [node for node in nodes if node.startswith("contiguous")]
    assert len(maps) == 3
    extractor = create_feature_extractor(features, return_nodes=maps)
    for height, width in SIZES:
        x = torch.randn(1, 3, height, width)
        with torch.no_grad():
            ours, theirs = extractor(x), features(x)
        for node, expected in zip(maps, theirs, strict=True):
            assert torch.equal(ours[node], expected)
