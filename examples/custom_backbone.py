"""A T2T stem feeding backbones of your own: a TransformerEncoder and a small CNN.

`T2TModule` returns the tokens `(B, N, C)` *and* their grid `(h, w)`, so the
tokens can go straight into any sequence model, or be folded back into a
`(B, C, h, w)` map for a convolutional head. Both models below train for a few
steps on random data (any input size works; the grid comes from the stem).

    python examples/custom_backbone.py --steps 20
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from t2t_vit import T2TModule


class T2TEncoder(nn.Module):
    """T2T stem + `torch.nn.TransformerEncoder` + mean pooling, `(B, C, H, W) -> (B, classes)`."""

    def __init__(self, num_classes: int, dim: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.stem = T2TModule(in_chans=3, embed_dim=dim, token_dim=16, tokens_type="performer")
        layer = nn.TransformerEncoderLayer(
            dim, nhead=4, dim_feedforward=2 * dim, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens, _ = self.stem(x)
        out: Tensor = self.head(self.encoder(tokens).mean(dim=1))
        return out


class T2TConvNet(nn.Module):
    """T2T stem, tokens folded to a map on their real grid, then a small CNN."""

    def __init__(self, num_classes: int, dim: int = 64) -> None:
        super().__init__()
        self.stem = T2TModule(in_chans=3, embed_dim=dim, token_dim=16, tokens_type="transformer")
        self.cnn = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, 2 * dim, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * dim),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * dim, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        tokens, (h, w) = self.stem(x)
        out: Tensor = self.cnn(rearrange(tokens, "b (h w) c -> b c h w", h=h, w=w))
        return out


def train(model: nn.Module, steps: int, size: tuple[int, int], seed: int) -> list[float]:
    """A few AdamW steps on a fixed random batch; the loss per step."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, *size, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    size = (args.height, args.width)
    for model in (T2TEncoder(num_classes=5), T2TConvNet(num_classes=5)):
        grid = model.stem.output_grid(*size)
        losses = train(model, args.steps, size, args.seed)
        print(
            f"{type(model).__name__}: {size[0]}x{size[1]} input -> {grid[0]}x{grid[1]} tokens; "
            f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {args.steps} steps",
            flush=True,
        )


if __name__ == "__main__":
    main()
