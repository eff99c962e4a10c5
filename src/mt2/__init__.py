"""MT2: Multi-Class-Token Transformer for self-supervised music information retrieval.

An independent implementation of Kong et al., WASPAA 2025 (arXiv 2507.12996). See
docs/design.md section 3 for which parts are reconstructions.

The names below are imported on first use (PEP 562), so that ``import mt2`` or
``import mt2.keys`` loads no network code and no optional dependency.
"""
import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "Encoder": "mt2.inference",
    "load": "mt2.inference",
    "ModelConfig": "mt2.model",
    "MT2Model": "mt2.model",
    "build_model": "mt2.model",
}

__all__ = ["Encoder", "ModelConfig", "MT2Model", "build_model", "load", "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mt2' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
