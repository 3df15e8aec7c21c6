"""TorchScript: not supported; `torch.jit.script` says so in one line and names the way."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["NotScriptable"]


class NotScriptable:
    """Mixin: `torch.jit.script(module)` raises one line naming `torch.export` instead of
    failing deep inside the compiler (TorchScript is in maintenance in PyTorch; the
    library's export path is `torch.export`, see docs/interop.md)."""

    def __prepare_scriptable__(self) -> NoReturn:
        name = type(self).__name__
        raise RuntimeError(
            f"{name} does not support TorchScript (torch.jit.script); export it with "
            "torch.export.export(model, (x,)) or compile it with torch.compile "
            "(see docs/interop.md, 'TorchScript')"
        )
