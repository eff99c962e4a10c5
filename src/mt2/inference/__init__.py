"""The public inference API (docs/design.md section 5): load an encoder, embed audio, estimate keys.

```python
import mt2
encoder = mt2.load("mt2")                     # a shipped name or a saved folder
emb = encoder.embed(audio, sr)                # any length, rate, channel count; one pass per window
emb.clip, emb.windows, emb.frames, emb.timestamps
emb.readout("contrastive").clip               # every readout from the same pass
encoder.key(audio, sr).key                    # "A minor"; None (label "X") for silence and noise
```

:mod:`mt2.inference.encoder` documents the one path from audio to outputs (the Encoder);
:mod:`mt2.inference.embedding` what it returns; :mod:`mt2.inference.windows` how audio becomes
windows; :mod:`mt2.inference.key_decision` how keys (and no key) are decided;
:mod:`mt2.inference.checkpoint` the folder format (safetensors + JSON, never pickle).
"""
from mt2.inference.checkpoint import SHIPPED_MODELS, CheckpointError, shipped_models
from mt2.inference.embedding import NO_KEY, READOUTS, Embedding, KeyEstimate, Readout
from mt2.inference.encoder import Encoder, load
from mt2.inference.key_decision import MIN_TONALITY, SILENCE_DB, KeyStatistics, tonality
from mt2.inference.windows import to_model_rate

__all__ = [
    "MIN_TONALITY", "NO_KEY", "READOUTS", "SHIPPED_MODELS", "SILENCE_DB", "CheckpointError", "Embedding", "Encoder", "KeyEstimate", "KeyStatistics", "Readout",
    "load", "shipped_models", "to_model_rate", "tonality",
]
