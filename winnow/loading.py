"""`winnow.load(folder)`: a run folder or an ensemble folder, ready for predict, eval, tune and calibrate."""

from __future__ import annotations

from pathlib import Path

from winnow.ensembles.predictor import EnsemblePredictor
from winnow.inference.predictor import Predictor, ScoringModel
from winnow.runs.layout import is_ensemble


def load(run_dir: str | Path, *, checkpoint: str | Path = "best", device: str = "auto",
         calibration: bool | str | Path = True, thresholds: bool | str | Path = True) -> ScoringModel:
    """Load a run folder (`winnow train`) or an ensemble folder (`winnow ensemble`) for inference.

    Args:
        run_dir: The folder.
        checkpoint: Checkpoint name or `.pt` path (runs); ensembles accept only "best" (their
            members' checkpoints were fixed when the ensemble was built).
        device: auto, cpu, cuda, cuda:1...
        calibration, thresholds: True: the folder's calibration.json / thresholds.json when present;
            False: never; a path: that file.
    """
    kind = EnsemblePredictor if is_ensemble(run_dir) else Predictor
    return kind(run_dir, checkpoint=checkpoint, device=device, calibration=calibration, thresholds=thresholds)
