"""The public inference API (DESIGN.md section 6): load an encoder, embed audio, estimate keys.

```python
import mt2
encoder = mt2.load("mt2")                     # a shipped name or a saved folder
emb = encoder.embed(audio, sr)                # any length, rate, channel count
emb.clip, emb.windows, emb.frames, emb.timestamps
encoder.key(audio, sr).key                    # "A minor"
```

:mod:`mt2.inference.encoder` documents windows, readouts and how keys are decided;
:mod:`mt2.inference.checkpoint` the folder format (safetensors + JSON, never pickle).
"""
from mt2.inference.checkpoint import SHIPPED_MODELS, CheckpointError, shipped_models
from mt2.inference.encoder import (
    READOUTS,
    Embedding,
    Encoder,
    KeyEstimate,
    load,
    to_model_rate,
)

__all__ = [
    "READOUTS", "SHIPPED_MODELS", "CheckpointError", "Embedding", "Encoder", "KeyEstimate",
    "load", "shipped_models", "to_model_rate",
]
