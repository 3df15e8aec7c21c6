"""Tokens-to-Token Vision Transformer (Yuan et al., ICCV 2021) for PyTorch.

The package is laid out by concern: `layers` (attention, blocks, the T2T stem),
`models` (the model, presets, feature backbone, neck), `weights` (registry, loading,
conversion, the Hub), `inference` (preprocessing, prediction, evaluation, attention maps),
then `factory` (`create_model`), `training`, `flops` and the `cli`. Every public name is
importable from `t2t_vit` itself.
"""

import importlib
import sys
import warnings
from types import ModuleType

from .factory import create_model
from .flops import count_macs, count_params
from .inference.evaluate import EvalResult, ImageFolder, evaluate
from .inference.labels import imagenet_wnids, load_labels, resolve_labels
from .inference.predict import Prediction, predict
from .inference.preprocess import EvalTransform, load_image, preprocess
from .inference.visualize import (
    AttentionMaps,
    attention_rollout,
    overlay_map,
    record_attention_maps,
    rollout,
)
from .layers.attention import (
    Attention,
    attend,
    prefers_fused_attention,
    record_attention,
    use_fused_attention,
)
from .layers.block import Block, DropPath, Mlp
from .layers.linear import prefers_packed_linear, use_packed_linear
from .layers.pos_embed import get_sinusoid_encoding, resample_pos_embed
from .layers.t2t_module import DEFAULT_T2T_LAYERS, T2TModule
from .layers.token_performer import TokenPerformer
from .layers.token_transformer import TokenAttention, TokenTransformer
from .models.features import FeatureInfo, T2TFeatures, create_feature_model, feature_levels
from .models.neck import SimpleFeaturePyramid
from .models.presets import PRESETS, canonical_name, list_models
from .models.t2t_vit import T2TViT
from .training import cosine_with_warmup, layer_id, param_groups_layer_decay
from .weights.checkpoint import UnsafeCheckpointError, convert_checkpoint, load_checkpoint
from .weights.convert import (
    StateDictMismatchError,
    adapt_input_channels,
    check_state_dict,
    convert_state_dict,
    infer_model_args,
)
from .weights.errors import PretrainedLoadError
from .weights.hub import push_to_hub
from .weights.pretrained import from_pretrained
from .weights.pretrained_cfg import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    default_pretrained_cfg,
    resolve_pretrained_cfg,
)
from .weights.publish import PublishedWeights, publish
from .weights.registry import (
    HUB_ORG,
    HUB_ORG_ENV,
    WEIGHTS,
    PretrainedWeights,
    get_weights,
    list_pretrained,
    render_zoo_table,
)
from .weights.serialization import save_pretrained

__version__ = "0.1.0"
"""The package version (its one source: the build reads it from this file)."""

# Module paths of 0.1 and where they live now. They stay importable until 0.3.0
# (CHANGELOG.md); reaching one as an attribute of the package warns.
_MOVED_MODULES = {
    "attention": "layers.attention",
    "block": "layers.block",
    "pos_embed": "layers.pos_embed",
    "t2t_module": "layers.t2t_module",
    "token_performer": "layers.token_performer",
    "token_transformer": "layers.token_transformer",
    "model": "models.t2t_vit",
    "features": "models.features",
    "neck": "models.neck",
    "presets": "models.presets",
    "checkpoint": "weights.checkpoint",
    "convert": "weights.convert",
    "errors": "weights.errors",
    "hub": "weights.hub",
    "pretrained": "weights.pretrained",
    "pretrained_cfg": "weights.pretrained_cfg",
    "publish": "weights.publish",
    "release": "weights.release",
    "serialization": "weights.serialization",
    "evaluate": "inference.evaluate",
    "labels": "inference.labels",
    "predict": "inference.predict",
    "preprocess": "inference.preprocess",
    "visualize": "inference.visualize",
}
for _old, _new in _MOVED_MODULES.items():
    # `import t2t_vit.convert` and `from t2t_vit.convert import ...` find the moved module.
    sys.modules.setdefault(f"{__name__}.{_old}", importlib.import_module(f"{__name__}.{_new}"))


def __getattr__(name: str) -> ModuleType:
    if name in _MOVED_MODULES:
        new = f"{__name__}.{_MOVED_MODULES[name]}"
        warnings.warn(
            f"t2t_vit.{name} moved to {new}; the old path goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return sys.modules[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "adapt_input_channels",
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
    "prefers_fused_attention",
    "prefers_packed_linear",
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
    "use_packed_linear",
]
