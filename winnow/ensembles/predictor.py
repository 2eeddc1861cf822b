"""`winnow.load(ENSEMBLE)`: an ensemble folder that predicts like a run.

Each member is loaded with its own calibration.json (not its thresholds.json); the combiner merges
the members' probabilities (or embeddings) per TTA view; the ensemble's own calibration.json and
thresholds.json (from `winnow calibrate ENSEMBLE` / `winnow tune ENSEMBLE`) then apply as for a run.
The combined probabilities enter that path as softmax-form logits `log p`. A head on embeddings with a
reject option (`winnow head --reject-tpr`) also says which images are far from every class, on the novelty
score averaged over the TTA views; `Predictions.predicted` calls them "unknown".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from winnow.ensembles.inputs import combine_views, member_inputs
from winnow.ensembles.store import EnsembleDefinition, load_combiner, read_ensemble
from winnow.inference.postprocess import probabilities_to_logits
from winnow.inference.predictions import ReadOutputs
from winnow.inference.predictor import Predictor, ScoringModel, image_set_hash
from winnow.inference.tta import TTA
from winnow.runs.files import fingerprint
from winnow.runs.layout import RunPaths
from winnow.tasks.spec import TaskSpec

log = logging.getLogger("winnow")
CHECKPOINT = "best"  # the only checkpoint name an ensemble answers to


class EnsemblePredictor(ScoringModel):
    """An ensemble folder from `winnow ensemble`, ready for inference (arguments as `Predictor`).

    Raises:
        ValueError: Not an ensemble folder, a checkpoint other than "best", or a missing member.
    """

    def __init__(self, folder: str | Path, *, checkpoint: str | Path = CHECKPOINT, device: str = "auto",
                 calibration: bool | str | Path = True, thresholds: bool | str | Path = True) -> None:
        folder = Path(folder)
        if str(checkpoint) != CHECKPOINT:
            raise ValueError(f"checkpoint: {folder} is an ensemble, whose members' checkpoints were fixed when it "
                             f"was built; got {str(checkpoint)!r}, use the default ({CHECKPOINT}) or rebuild it "
                             "with `winnow ensemble --checkpoint NAME`")
        self.definition = read_ensemble(folder)
        self.members = [Predictor(ref.locate(folder), checkpoint=ref.checkpoint, device=device, thresholds=False)
                        for ref in self.definition.members]
        for warning in member_changes(self.definition, self.members):
            log.warning("%s", warning)
        self.combiner = load_combiner(folder, self.definition)
        self.reject = reject_option(self.combiner, self.definition)
        first = self.members[0]
        super().__init__(folder, [TaskSpec.from_saved(task) for task in self.definition.tasks],
                         checkpoint_path=RunPaths(folder).ensemble, epoch=None, seed=first.config.seed,
                         max_image_pixels=first.config.max_image_pixels, calibration=calibration,
                         thresholds=thresholds)

    @property
    def method(self) -> str:
        return self.definition.method

    def reuse_warnings(self, paths: list[str], *, action: str) -> list[str]:
        """A stacker or feature head fitted on these very images looks better on them than it is."""
        fit = self.definition.fit
        if not fit or fit.get("images_sha1") != image_set_hash(paths):
            return []
        return [f"the {self.method} combiner of this ensemble was fitted on these same images ({fit['data']}): "
                f"{action} on them is optimistic; pass --data with images it has not seen"]

    def view_logits(self, paths: list[str], augmentation: TTA, *, batch_size: int = 64,
                    workers: int = 0) -> ReadOutputs:
        """Softmax-form logits `[n, V, K]` of the combined probabilities (`log p`) of the readable images."""
        inputs = member_inputs(self.members, self.combiner.input_kind, paths, augmentation, batch_size=batch_size,
                               workers=workers)
        logits = probabilities_to_logits(self.head, combine_views(self.combiner, inputs.values))
        rejected = self.combiner.reject_views(inputs.values) if self.reject is not None else None
        return ReadOutputs(logits, inputs.rows, inputs.bad, rejected)


def reject_option(combiner: Any, definition: EnsembleDefinition) -> dict[str, Any] | None:
    """The combiner's reject option (threshold, TPR, novelty score, fit data), or None when it has none."""
    if combiner.input_kind != "embeddings" or not combiner.rejects:
        return None
    fitted = (definition.fit or {}).get("reject") or {}
    return {**combiner.head_.reject_report_, "data": fitted.get("data")}


def member_changes(definition: EnsembleDefinition, members: list[Predictor]) -> list[str]:
    """Warnings for members whose checkpoint or calibration changed since the ensemble was built."""
    found = []
    for ref, member in zip(definition.members, members):
        for what, saved, now in (("checkpoint", ref.checkpoint_fingerprint, fingerprint(member.checkpoint_path)),
                                 ("calibration", ref.calibration_fingerprint, fingerprint(member.calibration_file))):
            if saved != now:
                found.append(f"member {member.run_dir}: its {what} changed since the ensemble was built; rebuild "
                             "the ensemble with `winnow ensemble` (its fit and thresholds assume the old one)")
    return found
