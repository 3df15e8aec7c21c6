"""Fine-tune a T2T-ViT on an ImageFolder tree with DistributedDataParallel.

    torchrun --nproc_per_node=4 examples/train_ddp.py --data DIR --model t2t-vit-14 \\
        --pretrained path/to/saved_model --epochs 10 --batch-size 64 --amp bf16

`DIR` holds one folder per class (`DIR/cat/*.jpg`, `DIR/dog/*.png`, ...);
`--val-data` may name a second such tree for accuracy after each epoch. The
loop is a plain one: AdamW on layer-wise lr-decay groups, a cosine schedule with
warm-up, a `DistributedSampler`, optional bf16 autocast and gradient
checkpointing. After every epoch rank 0 writes `OUTPUT/checkpoint.pt` (model,
optimizer and scheduler states) and `OUTPUT/model`, a `save_pretrained`
folder with the class names that `t2t-vit predict --weights OUTPUT/model`,
`t2t-vit evaluate` and `t2t_vit.from_pretrained` load. `--resume` continues the run
in `OUTPUT` from its checkpoint (after the last finished epoch, up to `--epochs`); an
`OUTPUT` that holds an earlier run is otherwise refused, unless `--force` starts a new
run over it. It runs on CPUs (gloo) as
well as GPUs (nccl); without `torchrun` it trains in one process. `--model tiny`
is a 32-wide, 2-block model for smoke tests.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

# Imported before the process group exists, on purpose: its functions take `group.WORLD`
# as a default argument, bound when the module is first imported. DistributedDataParallel
# imports it (through torch._dynamo) after init_process_group; the live group would then
# stay referenced there after destroy_process_group() and be torn down, gloo threads and
# all, only during interpreter shutdown, where a thread that needs the GIL aborts the
# process ("terminate called without an active exception", SIGABRT).
import torch.distributed.nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

import t2t_vit
from t2t_vit import T2TViT, cosine_with_warmup, param_groups_layer_decay
from t2t_vit.output import FolderPolicy, check_folder, write_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TINY = dict(embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, token_dim=8)
CHECKPOINT, MODEL = "checkpoint.pt", "model"
#: An OUTPUT holding an earlier run is continued (--resume) or replaced (--force), never
#: overwritten by accident.
RUN_POLICY = FolderPolicy(
    writer="train_ddp.py",
    what="--output",
    policy="it holds an earlier run",
    advice="pass --resume to continue that run, --force to start a new one over it, or "
    "choose another --output",
)


class ImageFolder(Dataset[tuple[Tensor, int]]):
    """`root/<class>/<image>` files as `(3, size, size)` float tensors and class indices.

    Images are read with Pillow, converted to RGB and resized to `size x size`
    (bicubic), then normalised; with `train=True` they are also flipped at random.
    """

    def __init__(
        self,
        root: str | Path,
        size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool,
        classes: list[str] | None = None,
    ) -> None:
        root = Path(root)
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        self.classes = classes if classes is not None else found
        if not self.classes:
            raise SystemExit(f"no class folders under {root!s}; expected {root}/<class>/<image>")
        self.samples = [
            (path, index)
            for index, name in enumerate(self.classes)
            for path in sorted((root / name).glob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root!s}")
        self.size, self.train = size, train
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        try:
            from PIL import Image
        except ImportError as err:
            raise SystemExit(
                'reading images needs Pillow: pip install ".[image]" in a clone of t2t-vit '
                '(pip install "t2t-vit[image]" once it is on PyPI)'
            ) from err
        path, label = self.samples[i]
        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
            data = bytearray(img.tobytes())
        x = torch.frombuffer(data, dtype=torch.uint8).view(self.size, self.size, 3)
        x = x.permute(2, 0, 1).float() / 255.0
        if self.train and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std, label


def class_folders(root: str | Path) -> list[str]:
    """The sorted class folder names of an ImageFolder tree."""
    root = Path(root)
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not found:
        raise SystemExit(f"no class folders under {root!s}; expected {root}/<class>/<image>")
    return found


def build_model(args: argparse.Namespace, num_classes: int) -> T2TViT:
    """A preset, the tiny config, or a `save_pretrained` folder (`--pretrained`) with a head
    for `num_classes`; `--img-size` and `--drop-path` apply to each."""
    if args.pretrained:
        if args.model == "tiny":
            raise SystemExit("--model tiny builds a new model; leave it out with --pretrained")
        # from_pretrained applies both: a new input size resamples the position table, and
        # the drop-path rate is an architecture argument that leaves the weights as they are.
        model = t2t_vit.from_pretrained(
            args.pretrained,
            num_classes=num_classes,
            img_size=args.img_size,
            drop_path_rate=args.drop_path,
        )
        if args.model is not None:
            check_preset(model, args.model, args.pretrained)
        return model
    img_size = args.img_size or 224
    if args.model == "tiny":
        return T2TViT(
            img_size=img_size,
            num_classes=num_classes,
            tokens_type=args.tokens_type,
            drop_path_rate=args.drop_path,
            **TINY,
        )
    return t2t_vit.create_model(
        args.model or "t2t-vit-7",
        num_classes=num_classes,
        img_size=img_size,
        drop_path_rate=args.drop_path,
    )


def check_preset(model: T2TViT, name: str, folder: str) -> None:
    """Refuse a `--model` preset that is not the architecture of the `--pretrained` folder."""
    try:
        preset = t2t_vit.PRESETS[t2t_vit.canonical_name(name)]
    except ValueError as err:
        raise SystemExit(f"--model: {err}") from None
    differ = [
        f"{key}={model.config[key]!r} (preset: {value!r})"
        for key, value in preset.items()
        if key in ("tokens_type", "embed_dim", "depth", "num_heads", "mlp_ratio")
        and model.config[key] != value
    ]
    if differ:
        raise SystemExit(
            f"--model {name} does not match the --pretrained folder {folder}: "
            f"{', '.join(differ)}; leave --model out to train the folder's architecture"
        )


def setup() -> tuple[int, int, torch.device]:
    """Join the torchrun process group if there is one: (rank, world size, device)."""
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        local = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        device = torch.device("cuda", local)
    else:
        dist.init_process_group("gloo")
        device = torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def mean_over_ranks(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader[Any], device: torch.device) -> float:
    model.eval()
    counts = torch.zeros(2, device=device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        counts += torch.stack(
            [(model(x).argmax(-1) == y).sum(), torch.tensor(len(y), device=device)]
        )
    if dist.is_initialized():
        dist.all_reduce(counts)
    return (counts[0] / counts[1]).item()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="training ImageFolder root")
    p.add_argument("--val-data", help="validation ImageFolder root (same class folders)")
    p.add_argument(
        "--model",
        help="preset name or 'tiny' (default t2t-vit-7); with --pretrained, a check of the "
        "folder's architecture",
    )
    p.add_argument("--tokens-type", default="performer", help="stem of --model tiny")
    p.add_argument(
        "--pretrained",
        help="a folder written by t2t_vit.save_pretrained or t2t-vit convert (or a registry "
        "name) to start from",
    )
    p.add_argument(
        "--img-size",
        type=int,
        help="input size (default 224, or the --pretrained folder's; another one resamples "
        "its position table)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: off)")
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the head")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--layer-decay", type=float, default=0.75)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--output",
        default="output",
        help="rank 0 writes OUTPUT/checkpoint.pt (for --resume) and OUTPUT/model, a "
        "save_pretrained folder for t2t-vit predict/evaluate --weights and from_pretrained",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUTPUT from OUTPUT/checkpoint.pt (up to --epochs)",
    )
    p.add_argument(
        "--force", action="store_true", help="start a new run over an earlier one in OUTPUT"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    args = p.parse_args(argv)
    check_output(p, args)

    rank, world, device = setup()
    train(args, rank, world, device)
    if dist.is_initialized():
        # DDP, holding the process group, is gone with train()'s frame: destroying the
        # group here stops gloo's threads while the interpreter is fully alive.
        dist.barrier()
        dist.destroy_process_group()


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it (through `./`, `..` and symlinks)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_output(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Before any work: --resume needs a checkpoint, and a new run never replaces one."""
    output = Path(args.output)
    # The run's files never go into a data tree: a class folder named `model` would join the
    # next run's classes.
    for flag, data in (("--data", args.data), ("--val-data", args.val_data)):
        if data is not None and _inside(output, Path(data)):
            parser.error(
                f"--output {args.output} is inside {flag} {data}: the run would write into the "
                "image tree; choose an --output outside it"
            )
    if args.resume and args.force:
        parser.error("--resume continues the run in --output, --force starts a new one: give one")
    if args.resume:
        if not (output / CHECKPOINT).is_file():
            parser.error(f"--resume: no {output / CHECKPOINT} to continue from")
        return
    try:
        check_folder(output, [CHECKPOINT, MODEL], RUN_POLICY, overwrite=args.force)
        if args.pretrained:
            # Even with --force, the run never saves over the folder it starts from.
            names = ["config.json", "model.safetensors"]
            inputs = {Path(args.pretrained) / n: f"the --pretrained folder's {n}" for n in names}
            check_folder(output / MODEL, names, RUN_POLICY, inputs=inputs, overwrite=True)
    except (OSError, ValueError) as err:
        parser.error(str(err))


def resume(args: argparse.Namespace, classes: list[str]) -> tuple[T2TViT, dict[str, Any]]:
    """The model of OUTPUT/checkpoint.pt, and the checkpoint (optimizer, scheduler, step)."""
    path = Path(args.output) / CHECKPOINT
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["classes"] != classes:
        raise SystemExit(
            f"--resume: {path} was trained on the classes {state['classes']}, --data has {classes}"
        )
    model = T2TViT(**state["config"])
    model.load_state_dict(state["model"])
    model.pretrained_cfg = state["pretrained_cfg"]
    return model, state


def train(args: argparse.Namespace, rank: int, world: int, device: torch.device) -> None:
    """The training loop of this process; rank 0 writes the checkpoint after each epoch."""
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    classes = class_folders(args.data)
    resumed: dict[str, Any] | None = None
    if args.resume:
        model, resumed = resume(args, classes)
        cfg = dict(model.pretrained_cfg or {})
    else:
        model = build_model(args, len(classes))
        # The model's own preprocessing config: its mean and std for training, and the class
        # names and input size for the saved folder, so that predict sees what training saw.
        cfg = {
            k: v for k, v in t2t_vit.resolve_pretrained_cfg(model).items() if k not in ("metrics",)
        }
        cfg["labels"] = classes
        model.pretrained_cfg = cfg
    model = model.to(device)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    size = model.img_size[0]
    train_set = ImageFolder(args.data, size, mean, std, train=True, classes=classes)
    model.set_grad_checkpointing(args.grad_checkpointing)
    ddp = DistributedDataParallel(model) if world > 1 else model

    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=args.seed)
    loader = DataLoader(
        train_set,
        args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        drop_last=len(train_set) >= args.batch_size * world,
    )
    val_loader = None
    if args.val_data:
        val_set = ImageFolder(args.val_data, size, mean, std, train=False, classes=classes)
        val_loader = DataLoader(
            val_set,
            args.batch_size,
            num_workers=args.workers,
            sampler=DistributedSampler(val_set, world, rank, shuffle=False),
        )

    lr = args.lr
    optimizer = torch.optim.AdamW(
        param_groups_layer_decay(
            model, weight_decay=args.weight_decay, layer_decay=args.layer_decay, lr=lr
        )
    )
    steps_per_epoch = len(loader)
    total = args.epochs * steps_per_epoch
    if args.max_steps:
        total = min(total, args.max_steps)
    warmup = min(total, math.ceil(args.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, total, warmup)
    )
    step, first_epoch = 0, 0
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        step, first_epoch = resumed["step"], resumed["epoch"] + 1
        if rank == 0:
            print(
                f"resumed {Path(args.output) / CHECKPOINT} after epoch {resumed['epoch']} "
                f"(step {step})",
                flush=True,
            )
        if first_epoch >= args.epochs or step >= total:
            if rank == 0:
                print(f"nothing to resume: the run already did {step} of {total} steps")
            return
    if rank == 0:
        print(
            f"world_size={world} device={device} images={len(train_set)} "
            f"classes={len(train_set.classes)} steps={total} lr={lr:.3g}",
            flush=True,
        )

    output = Path(args.output)
    start = time.perf_counter()
    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        ddp.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                loss = F.cross_entropy(ddp(x), y, label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % args.log_every == 0 or step == 1 or step == total:
                mean_loss = mean_over_ranks(loss.item(), device)
                if rank == 0:
                    print(
                        f"epoch {epoch} step {step}/{total} loss {mean_loss:.4f} "
                        f"lr {optimizer.param_groups[-1]['lr']:.3e} "
                        f"{time.perf_counter() - start:.1f}s",
                        flush=True,
                    )
            if step >= total:
                break
        if val_loader is not None:
            acc = evaluate(ddp, val_loader, device)
            if rank == 0:
                print(f"epoch {epoch} val accuracy {acc:.4f}", flush=True)
        if rank == 0:
            made = not output.exists()
            output.mkdir(parents=True, exist_ok=True)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "step": step,
                "config": model.config,
                "pretrained_cfg": cfg,
                "classes": train_set.classes,
            }
            try:
                # This run's own checkpoint (checked at the start): replaced whole, never half.
                write_file(output / CHECKPOINT, functools.partial(torch.save, state), force=True)
            except BaseException:
                if made:
                    output.rmdir()  # as it was: no folder
                raise
            print(f"saved {output / CHECKPOINT} (epoch {epoch}, step {step})", flush=True)
            # The weights alone, with their config: what predict, evaluate and
            # from_pretrained load.
            t2t_vit.save_pretrained(model, output / MODEL, overwrite=args.force)
            print(f"saved {output / MODEL} (t2t-vit predict --weights {output / MODEL})")
        if step >= total:
            break


if __name__ == "__main__":
    main()
