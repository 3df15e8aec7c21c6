"""Where weights come from and where they go.

The registry of released checkpoints (`registry`), their preprocessing metadata
(`pretrained_cfg`), the loader (`pretrained`), the Hub (`hub`), the original release files
(`release`), reading and converting foreign checkpoints (`checkpoint`, `convert`), the Hub
folder on disk (`serialization`), publishing (`publish`) and the errors of this side
(`errors`).

The registry's names are importable from here too, as they were from the `t2t_vit.weights`
module of 0.1.
"""

from .registry import (
    HUB_ORG,
    HUB_ORG_ENV,
    WEIGHTS,
    PretrainedWeights,
    get_weights,
    list_pretrained,
    render_zoo_table,
)

__all__ = [
    "HUB_ORG",
    "HUB_ORG_ENV",
    "WEIGHTS",
    "PretrainedWeights",
    "get_weights",
    "list_pretrained",
    "render_zoo_table",
]
