"""The official training recipe with timm's own training parts (issue 22, item 6).

timm's `train.py` is not in its sdist, so this is the loop it runs, two steps on a tiny
synthetic ImageFolder, built from the same timm calls: `create_transform` (the recipe's
RandAugment, random erasing and random interpolation), `create_optimizer_v2` (AdamW, with the
model's `no_weight_decay` and `group_matcher` for layer decay), `create_scheduler_v2`
(cosine, warmup, cooldown), `Mixup` (mixup 0.8, cutmix 1.0, smoothing 0.1), `ModelEmaV3`,
bf16 autocast and gradient checkpointing. docs/training.md gives the `train.py` commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.interop

#: The official `main.py` defaults and the T2T-ViT-7 command of the official README
#: (8 GPUs: `-b 64 --lr 1e-3 --weight-decay .03`).
RECIPE: dict[str, Any] = dict(
    lr=1e-3,
    weight_decay=0.03,
    epochs=300,
    warmup_epochs=10,
    warmup_lr=1e-6,
    min_lr=1e-5,
    cooldown_epochs=10,
    mixup=0.8,
    cutmix=1.0,
    smoothing=0.1,
    drop_path=0.1,
    ema_decay=0.99996,
)


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(4):
            image = Image.new("RGB", (40, 36), ((60 * c + 20 * i) % 256, 90, 200 - 30 * i))
            image.save(root / name / f"{i}.png")
    return root


@pytest.mark.filterwarnings("ignore:bf16 is emulated on this CPU:RuntimeWarning")
def test_two_steps_of_the_official_recipe_with_timms_training_parts(tmp_path: Path) -> None:
    import timm
    from timm.data import ImageDataset, Mixup, create_transform, resolve_data_config
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    import t2t_vit.timm  # noqa: F401  (registers the models)

    torch.manual_seed(0)
    model = timm.create_model(
        "t2t_vit_7", num_classes=2, img_size=64, drop_path_rate=RECIPE["drop_path"]
    )
    model.set_grad_checkpointing()
    config = resolve_data_config(model=model)
    config["interpolation"] = "random"  # the recipe's --train-interpolation
    transform = create_transform(
        **config,
        is_training=True,
        auto_augment="rand-m9-mstd0.5-inc1",
        re_prob=0.25,
        re_mode="pixel",
    )
    dataset = ImageDataset(str(_image_folder(tmp_path / "train")), transform=transform)
    assert dataset.reader.class_to_idx == {"cat": 0, "dog": 1}
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, drop_last=True)

    optimizer = create_optimizer_v2(
        model, opt="adamw", lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"]
    )
    no_decay = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    assert "cls_token" in {names[id(p)] for g in no_decay for p in g["params"]}
    scheduler, epochs = create_scheduler_v2(
        optimizer,
        sched="cosine",
        num_epochs=RECIPE["epochs"],
        warmup_epochs=RECIPE["warmup_epochs"],
        warmup_lr=RECIPE["warmup_lr"],
        min_lr=RECIPE["min_lr"],
        cooldown_epochs=RECIPE["cooldown_epochs"],
    )
    assert epochs == RECIPE["epochs"] + RECIPE["cooldown_epochs"]
    mixup = Mixup(
        mixup_alpha=RECIPE["mixup"],
        cutmix_alpha=RECIPE["cutmix"],
        label_smoothing=RECIPE["smoothing"],
        num_classes=2,
    )
    criterion = SoftTargetCrossEntropy()
    ema = ModelEmaV3(model, decay=RECIPE["ema_decay"])

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    for step, (x, y) in enumerate(loader):
        if step == 2:
            break
        x, target = mixup(x, y)
        assert torch.allclose(target.sum(dim=1), torch.ones(4))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = criterion(model(x), target)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        ema_before = ema.module.head.weight.detach().clone()
        optimizer.step()
        ema.update(model, step=step + 1)  # train.py counts updates from 1
        # timm's EMA copies the model at its first update, then decays at the recipe's rate.
        decay = ema.get_decay(step + 1)
        assert decay == (0.0 if step == 0 else RECIPE["ema_decay"])
        expected = ema_before.lerp(model.head.weight.detach(), 1 - decay)
        torch.testing.assert_close(ema.module.head.weight, expected)
        scheduler.step(step + 1)
    # Every parameter trained, stem and last block included.
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == set(before)
    # Linear warmup from warmup_lr to lr over warmup_epochs: epoch 2 is 2/10 of the way.
    warm = RECIPE["warmup_lr"] + 2 * (RECIPE["lr"] - RECIPE["warmup_lr"]) / RECIPE["warmup_epochs"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(warm)


def test_layer_decay_groups_follow_the_models_group_matcher() -> None:
    import timm
    from timm.optim import create_optimizer_v2

    import t2t_vit.timm  # noqa: F401

    model = timm.create_model("t2t_vit_7", num_classes=2, img_size=64)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in optimizer.param_groups})
    # The stem, the 7 blocks and the norm and head: 9 layer ids, scales 0.5 ** (8 - id).
    assert scales == pytest.approx([0.5**k for k in range(8, -1, -1)])
    stem = next(g for g in optimizer.param_groups if g["lr_scale"] == pytest.approx(0.5**8))
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in stem["params"]} <= {
        "cls_token",
        "tokens_to_token",
    }
