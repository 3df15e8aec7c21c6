"""The T2T-ViT model, its presets, its multi-scale feature backbone and a pyramid neck."""
