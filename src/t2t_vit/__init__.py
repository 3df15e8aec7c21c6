"""Tokens-to-Token Vision Transformer (Yuan et al., ICCV 2021) for PyTorch."""

from .attention import Attention, attend, record_attention, use_fused_attention
from .block import Block, DropPath, Mlp
from .checkpoint import UnsafeCheckpointError, convert_checkpoint, load_checkpoint
from .convert import (
    StateDictMismatchError,
    check_state_dict,
    convert_state_dict,
    infer_model_args,
)
from .errors import PretrainedLoadError
from .evaluate import EvalResult, ImageFolder, evaluate
from .factory import create_model
from .features import FeatureInfo, T2TFeatures, create_feature_model, feature_levels
from .flops import count_macs, count_params
from .hub import push_to_hub
from .labels import imagenet_wnids, load_labels, resolve_labels
from .model import T2TViT
from .neck import SimpleFeaturePyramid
from .pos_embed import get_sinusoid_encoding, resample_pos_embed
from .predict import Prediction, predict
from .preprocess import EvalTransform, load_image, preprocess
from .presets import PRESETS, canonical_name, list_models
from .pretrained import from_pretrained
from .pretrained_cfg import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    default_pretrained_cfg,
    resolve_pretrained_cfg,
)
from .publish import PublishedWeights, publish
from .serialization import save_pretrained
from .t2t_module import DEFAULT_T2T_LAYERS, T2TModule
from .token_performer import TokenPerformer
from .token_transformer import TokenAttention, TokenTransformer
from .training import cosine_with_warmup, layer_id, param_groups_layer_decay
from .visualize import (
    AttentionMaps,
    attention_rollout,
    overlay_map,
    record_attention_maps,
    rollout,
)
from .weights import (
    HUB_ORG,
    HUB_ORG_ENV,
    WEIGHTS,
    PretrainedWeights,
    get_weights,
    list_pretrained,
    render_zoo_table,
)

__version__ = "0.1.0"
"""The package version."""

__all__ = [
    "DEFAULT_T2T_LAYERS",
    "HUB_ORG",
    "HUB_ORG_ENV",
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "PRESETS",
    "WEIGHTS",
    "Attention",
    "AttentionMaps",
    "Block",
    "DropPath",
    "EvalResult",
    "EvalTransform",
    "FeatureInfo",
    "ImageFolder",
    "Mlp",
    "Prediction",
    "PretrainedLoadError",
    "PretrainedWeights",
    "PublishedWeights",
    "SimpleFeaturePyramid",
    "StateDictMismatchError",
    "T2TFeatures",
    "T2TModule",
    "T2TViT",
    "TokenAttention",
    "TokenPerformer",
    "TokenTransformer",
    "UnsafeCheckpointError",
    "__version__",
    "attend",
    "attention_rollout",
    "canonical_name",
    "check_state_dict",
    "convert_checkpoint",
    "convert_state_dict",
    "cosine_with_warmup",
    "count_macs",
    "count_params",
    "create_feature_model",
    "create_model",
    "default_pretrained_cfg",
    "evaluate",
    "feature_levels",
    "from_pretrained",
    "get_sinusoid_encoding",
    "get_weights",
    "imagenet_wnids",
    "infer_model_args",
    "layer_id",
    "list_models",
    "list_pretrained",
    "load_checkpoint",
    "load_image",
    "load_labels",
    "overlay_map",
    "param_groups_layer_decay",
    "predict",
    "preprocess",
    "publish",
    "push_to_hub",
    "record_attention",
    "record_attention_maps",
    "render_zoo_table",
    "resample_pos_embed",
    "resolve_labels",
    "resolve_pretrained_cfg",
    "rollout",
    "save_pretrained",
    "use_fused_attention",
]
