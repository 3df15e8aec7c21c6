"""Tokens-to-Token Vision Transformer (Yuan et al., ICCV 2021) for PyTorch."""

from .attention import Attention, attend, record_attention, use_fused_attention
from .block import Block, DropPath, Mlp
from .convert import check_state_dict, convert_state_dict
from .flops import count_macs, count_params
from .hub import from_pretrained, save_pretrained
from .model import T2TViT
from .pos_embed import get_sinusoid_encoding, resample_pos_embed
from .presets import PRESETS, canonical_name, create_model, list_models
from .pretrained_cfg import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    default_pretrained_cfg,
    resolve_pretrained_cfg,
)
from .t2t_module import DEFAULT_T2T_LAYERS, T2TModule
from .token_performer import TokenPerformer
from .token_transformer import TokenAttention, TokenTransformer
from .training import cosine_with_warmup, layer_id, param_groups_layer_decay

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_T2T_LAYERS",
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "PRESETS",
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "T2TModule",
    "T2TViT",
    "TokenAttention",
    "TokenPerformer",
    "TokenTransformer",
    "__version__",
    "attend",
    "canonical_name",
    "check_state_dict",
    "convert_state_dict",
    "cosine_with_warmup",
    "count_macs",
    "count_params",
    "create_model",
    "default_pretrained_cfg",
    "from_pretrained",
    "get_sinusoid_encoding",
    "layer_id",
    "list_models",
    "param_groups_layer_decay",
    "record_attention",
    "resample_pos_embed",
    "resolve_pretrained_cfg",
    "save_pretrained",
    "use_fused_attention",
]
