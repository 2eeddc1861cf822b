"""A head folder (`winnow head`) applied to an embeddings file (`winnow embed`) instead of images.

The file must come from the head's run as it is now (same checkpoint fingerprint), and its labelled rows
must carry the head's classes: a file of the run's classes used with a head fitted on new classes
(or the other way round) is refused with both class lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winnow.embeddings.extract import EmbeddingSet
from winnow.ensembles.store import EnsembleDefinition, load_combiner, read_ensemble


def head_definition(folder: str | Path) -> EnsembleDefinition:
    """ensemble.json of a one-member head folder.

    Raises:
        ValueError: Not a folder of `winnow head` (another method, or several members).
    """
    definition = read_ensemble(folder)
    if definition.method != "svm" or len(definition.members) != 1:
        raise ValueError(f"{folder} is a {definition.method} ensemble of {len(definition.members)} run(s); embeddings "
                         "files apply to a head folder of one run (`winnow head RUN --kind K`)")
    return definition


def predict_embeddings(folder: str | Path, embeddings_file: str | Path) -> tuple[EmbeddingSet, np.ndarray]:
    """Probabilities `[N, K]` of the head in `folder` for the rows of an embeddings file (in the head's classes,
    `read_ensemble(folder).tasks[0]["classes"]`).

    Raises:
        ValueError: Not a head folder, a file that is not a winnow embeddings file, embeddings of another run or
            checkpoint, labels that are not the head's classes, or another embedding size.
    """
    folder = Path(folder)
    definition = head_definition(folder)
    embeddings = EmbeddingSet.load(embeddings_file)
    ref = definition.members[0]
    embeddings.check_from(ref.locate(folder), checkpoint=ref.checkpoint)
    check_labels(embeddings, definition.tasks[0]["classes"], file=Path(embeddings_file), folder=folder)
    return embeddings, load_combiner(folder, definition).predict_proba(embeddings.embeddings)


def check_labels(embeddings: EmbeddingSet, classes: list[str], *, file: Path, folder: Path) -> None:
    """Refuse labelled rows whose labels are not the head's classes (unlabelled rows are fine).

    Raises:
        ValueError: Labels outside `classes`, listed with the head's and the file's run's classes.
    """
    unknown = sorted({label for label in embeddings.labels if label} - set(classes))
    if unknown:
        raise ValueError(f"embeddings file {file} has label(s) {unknown[:20]} that are not classes of the head "
                         f"{folder} ({classes}; the file's run has {embeddings.meta.get('classes')}): the head was "
                         "fitted on other classes; embed images of the head's classes (`winnow embed RUN DATA`) or "
                         "fit a head on these classes (`winnow head RUN --kind K --data DATA`)")
