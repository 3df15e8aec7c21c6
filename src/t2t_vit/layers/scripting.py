"""TorchScript: not supported; `torch.jit.script` and `torch.jit.trace` say so in one line
and name the way."""

from __future__ import annotations

from typing import NoReturn

import torch

__all__ = ["NotScriptable", "refuse_jit_trace"]


def _not_supported(module: object, how: str) -> str:
    return (
        f"{type(module).__name__} does not support TorchScript ({how}); export it with "
        "torch.export.export(model, (x,)) or compile it with torch.compile "
        "(see docs/interop.md, 'TorchScript')"
    )


def refuse_jit_trace(module: object) -> None:
    """Raise one line under `torch.jit.trace`, which would otherwise fail inside the size
    checks (a traced size is a tensor) or record a graph fixed to one input size."""
    if torch._C._get_tracing_state() is not None:  # torch.jit.is_tracing(), typed
        raise RuntimeError(_not_supported(module, "torch.jit.trace"))


class NotScriptable:
    """Mixin: `torch.jit.script(module)` raises one line naming `torch.export` instead of
    failing deep inside the compiler (TorchScript is in maintenance in PyTorch; the
    library's export path is `torch.export`, see docs/interop.md)."""

    def __prepare_scriptable__(self) -> NoReturn:
        raise RuntimeError(_not_supported(self, "torch.jit.script"))
