"""Set-level music metrics (the mgeval / PerceiverS suite) and transcription scores.

    from musicdata.metrics import extract_features, evaluate_sets, notes_from_midi
    from musicdata.stages.metrics import evaluate_folders
    ev = evaluate_folders(Path("ref"), Path("gen"))
    ev.results["pch"]["oa"], ev.results["pch"]["kld"]

- `features`: per-piece features, vectorized over a whole set (`extract_features`);
- `sets`: intra/inter distances, KDE on a common support, KLD and OA (`evaluate_sets`);
- folders in, results out, recorded in the catalog: the metrics stage (musicdata.stages.metrics);
- `transcription`: note-level precision/recall/F1 with mir_eval (`note_scores`);
- `plots`: `plot_metric(detail, ax)` from a catalog row.
"""

from musicdata.metrics.features import (
    FEATURES,
    FeatureConfig,
    Notes,
    extract_features,
    notes_from_midi,
    notes_from_score,
)
from musicdata.metrics.sets import SetConfig, compare_distributions, evaluate_sets
from musicdata.metrics.transcription import note_scores, score_midi_pair

__all__ = [
    "FEATURES",
    "FeatureConfig",
    "Notes",
    "SetConfig",
    "compare_distributions",
    "evaluate_sets",
    "extract_features",
    "note_scores",
    "notes_from_midi",
    "notes_from_score",
    "score_midi_pair",
]
