"""Layers: attention, linear layers (the packed CPU GEMM), the encoder block, the two T2T
layers, the T2T stem and position tables.

Nothing here knows about presets, weights or images; each layer is usable on its own.
"""
