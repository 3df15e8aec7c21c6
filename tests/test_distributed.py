"""Two CPU processes on gloo: DistributedDataParallel and FSDP2 (`fully_shard`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from t2t_vit import T2TViT, create_feature_model, param_groups_layer_decay

TINY: dict[str, Any] = dict(
    img_size=32,
    tokens_type="transformer",
    embed_dim=32,
    depth=2,
    num_heads=2,
    token_dim=8,
    num_classes=4,
)
WORLD = 2
STEPS = 4
#: Two ranks averaging half-batch gradients against one process on the whole batch.
DIST_ATOL = 1e-5


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 4, (8,), generator=g)


def _model() -> T2TViT:
    torch.manual_seed(0)
    return T2TViT(**TINY)


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups_layer_decay(model, layer_decay=0.75, lr=1e-3))


def _worker(rank: int, port: int, mode: str, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = _model()
        wrapped: torch.nn.Module
        if mode == "ddp":
            wrapped = torch.nn.parallel.DistributedDataParallel(model)
        else:
            from torch.distributed.fsdp import fully_shard

            for block in model.blocks:
                fully_shard(block)
            fully_shard(model)
            wrapped = model
        optimizer = _optimizer(model)
        x, y = _data()
        # Each rank sees its own half of the batch: without gradient syncing the
        # replicas would drift apart.
        x, y = x[rank * 4 : (rank + 1) * 4], y[rank * 4 : (rank + 1) * 4]
        losses = []
        for _ in range(STEPS):
            loss = F.cross_entropy(wrapped(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            total = loss.detach().clone()
            dist.all_reduce(total)
            losses.append(total.item() / WORLD)
        state = {
            k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
            for k, v in model.state_dict().items()
        }
        sharded = [type(p).__name__ for p in model.parameters()][:1]
        torch.save(
            {"state": state, "losses": losses, "param_type": sharded},
            Path(out_dir) / f"{mode}{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _single_process_reference() -> tuple[dict[str, torch.Tensor], list[float]]:
    model = _model()
    optimizer = _optimizer(model)
    x, y = _data()
    losses = []
    for _ in range(STEPS):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.state_dict(), losses


@pytest.mark.parametrize(("mode", "param_type"), [("ddp", "Parameter"), ("fsdp", "DTensor")])
def test_two_gloo_ranks_train_in_lockstep(mode: str, param_type: str, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), mode, str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"{mode}{r}.pt") for r in range(WORLD)]
    assert results[0]["param_type"] == results[1]["param_type"] == [param_type]
    state0, state1 = results[0]["state"], results[1]["state"]
    assert state0.keys() == state1.keys()
    for key in state0:
        assert torch.equal(state0[key], state1[key]), key
    losses = results[0]["losses"]
    assert losses == results[1]["losses"]
    assert losses[-1] < losses[0] - 0.05
    # Averaged half-batch gradients equal the whole batch's: one process agrees.
    reference, reference_losses = _single_process_reference()
    assert losses == pytest.approx(reference_losses, abs=DIST_ATOL)
    for key, value in reference.items():
        torch.testing.assert_close(state0[key], value, atol=DIST_ATOL, rtol=0, msg=key)


def _features_worker(rank: int, port: int, out_indices: tuple[int, ...], out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        features = create_feature_model(_model(), out_indices=out_indices).train()
        # No find_unused_parameters: a parameter without a gradient fails the second step.
        wrapped = torch.nn.parallel.DistributedDataParallel(features)
        optimizer = torch.optim.SGD(features.parameters(), lr=0.1)
        x, _ = _data()
        x = x[rank * 4 : (rank + 1) * 4]
        for _ in range(2):
            loss = sum(m.square().mean() for m in wrapped(x))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        state = {k: v.detach().clone() for k, v in features.state_dict().items()}
        torch.save(state, Path(out_dir) / f"features{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("out_indices", [(0,), (1,)])
def test_ddp_trains_stem_only_levels_without_find_unused_parameters(
    out_indices: tuple[int, ...], tmp_path: Path
) -> None:
    mp.spawn(
        _features_worker, args=(_free_port(), out_indices, str(tmp_path)), nprocs=WORLD, join=True
    )
    state0, state1 = (torch.load(tmp_path / f"features{r}.pt") for r in range(WORLD))
    # Only the T2T layers up to the deepest selected one are in the module.
    layers = {k.split(".")[1] for k in state0}
    assert layers == {f"attention{i + 1}" for i in range(out_indices[0] + 1)}
    before = _model().state_dict()
    for key in state0:
        assert torch.equal(state0[key], state1[key]), key
    assert any(not torch.equal(state0[k], before[k]) for k in state0)
