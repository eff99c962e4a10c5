"""MT2: Multi-Class-Token Transformer for self-supervised music information retrieval.

An independent implementation of Kong et al., WASPAA 2025 (arXiv 2507.12996). See
DESIGN.md for which parts are reconstructions.
"""
from mt2.inference import Encoder, load
from mt2.model import ModelConfig, MT2Model, build_model

__version__ = "0.1.0"

__all__ = ["Encoder", "ModelConfig", "MT2Model", "build_model", "load", "__version__"]
