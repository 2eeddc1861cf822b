"""`winnow.load(run_dir).predict(images)`: batched inference with a run's preprocessing.

`ScoringModel` holds what runs and ensembles share (operating files, `predict`); `Predictor` is a
trained run (`winnow.ensembles.predictor.EnsemblePredictor` the ensemble). For single-task runs the
run's `calibration.json` and `thresholds.json` (from `winnow calibrate` and `winnow tune`) are applied
when present: calibration to the logits, the tuned decision rule to the probabilities. Test-time
augmentation (`tta=`) is described in `winnow.inference.tta`. An image that cannot be read is skipped
and listed in `Predictions.bad` (`strict=True`: an error). No header scan runs first: the data loader
(`winnow.data.unreadable`) decodes each file once, with every check of that scan (missing, empty, not an
image, too many pixels, refused before decoding), and lists the files that fail with the scan's reasons.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset, default_collate

from winnow.calibration.store import load_calibration
from winnow.config import read_saved, tta_views
from winnow.data.cache import CachedRows
from winnow.data.dataset import ImageDataset
from winnow.data.imageio import collect_decode_notes
from winnow.data.prepare import DataSpec
from winnow.data.real_paths import real_paths
from winnow.data.sources import IMAGE_SUFFIXES, Samples, read_manifest_paths
from winnow.data.transforms import eval_transform
from winnow.data.unreadable import NothingRead, skipping_loader
from winnow.data.validation import bad_summary, check_readable, log_decode_notes, repeated_rows
from winnow.inference.postprocess import softmax_logits, to_probabilities
from winnow.inference.predictions import Predictions, ReadOutputs
from winnow.inference.run_cache import run_cached_rows
from winnow.inference.tta import TTA, ViewDataset, ViewModel, build_views, collate_views, merge_views, parse_tta
from winnow.models.embedding import EmbeddingModel
from winnow.models.registry import create_model
from winnow.models.weights import build_with_weights
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.store import load_thresholds
from winnow.runs.files import fingerprint, read_json
from winnow.runs.layout import RunPaths, checkpoint_names
from winnow.tasks.heads import Head
from winnow.tasks.outputs import probabilities
from winnow.tasks.spec import TaskSpec, model_outputs
from winnow.training.checkpoint import evaluation_weights, load_checkpoint, owned_tensors
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.engine import predict_probabilities
from winnow.training.progress import Progress

log = logging.getLogger("winnow")
AUGMENT_KEYS = ("fill", "hflip", "vflip", "rotate", "scale_jitter", "brightness", "contrast", "randaugment")


def resolve_checkpoint(run_dir: Path, checkpoint: str | Path) -> Path:
    """A checkpoint name in RUN/checkpoints (best, last, selected, epoch0003...) or a `.pt` path.

    Raises:
        ValueError: The checkpoint does not exist; the message lists the run's checkpoints.
    """
    text = str(checkpoint)
    if "/" in text or "\\" in text or text.endswith(".pt"):
        if not Path(text).is_file():
            raise ValueError(f"checkpoint {text} does not exist; pass an existing .pt file or a checkpoint "
                             f"name of the run ({', '.join(checkpoint_names(run_dir)) or 'none found'})")
        return Path(text)
    path = RunPaths(run_dir).checkpoint(text)
    if not path.is_file():
        raise ValueError(f"checkpoint {text!r} not found in {path.parent}; available: "
                         f"{', '.join(checkpoint_names(run_dir)) or 'none (has the run finished an epoch?)'}; "
                         "pass one of them or a .pt path")
    return path


def collect_images(inputs: list[str | Path]) -> list[str]:
    """Image paths from files, folders (searched recursively) and CSV manifests."""
    paths: list[str] = []
    for item in map(Path, inputs):
        if item.suffix.lower() == ".csv":
            paths += read_manifest_paths(item)
        elif item.is_dir():
            paths += real_paths(p for p in sorted(item.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(str(item.resolve()))
    if not paths:
        raise ValueError(f"no images found in {[str(i) for i in inputs]}; pass image files, folders or a CSV")
    return paths


def image_set_hash(paths: list[str]) -> str:
    """SHA-1 of the sorted real paths: tells whether two data sets are the same images."""
    digest = hashlib.sha1()
    for path in sorted(os.path.realpath(p) for p in paths):
        digest.update(path.encode("utf-8") + b"\n")
    return digest.hexdigest()


class ScoringModel:
    """What `predict`, `eval`, `tune` and `calibrate` need from a run or an ensemble folder.

    Subclasses load their model(s) and implement `view_logits`; this class applies the folder's
    operating files (calibration.json, thresholds.json) and builds `Predictions`.

    Args:
        run_dir: The folder (run or ensemble).
        tasks: Its tasks (one for ensembles).
        checkpoint_path: The weights file the operating files are fingerprinted against.
        epoch: Epoch of the checkpoint (None for ensembles).
        seed: Seed of random TTA views.
        max_image_pixels: Larger images are refused as decompression bombs.
        calibration, thresholds: As `Predictor`.

    Attributes:
        reject: The folder's reject option (a head on embeddings with `fit_reject`), or None: then `view_logits`
            also says which images it rejects as unknown (`ReadOutputs.rejected`).
    """

    reject: dict[str, Any] | None = None
    default_tta: str = "none"  # the views `predict` uses when given tta=None (a run's config `tta`)

    def __init__(self, run_dir: Path, tasks: list[TaskSpec], *, checkpoint_path: Path, epoch: int | None,
                 seed: int, max_image_pixels: int, calibration: bool | str | Path = True,
                 thresholds: bool | str | Path = True) -> None:
        self.run_dir, self.tasks, self.checkpoint_path, self.epoch = run_dir, tasks, checkpoint_path, epoch
        self.seed, self.max_image_pixels = seed, max_image_pixels
        self.calibration_file = self._operating_file(calibration, RunPaths(self.run_dir).calibration)
        self.thresholds_file = self._operating_file(thresholds, RunPaths(self.run_dir).thresholds)
        self.calibration = self._load(self.calibration_file, load_calibration, "calibration")
        self.decision = self._load(self.thresholds_file, load_thresholds, "thresholds")

    @property
    def classes(self) -> list[str]:
        return self.tasks[0].head.classes

    def reuse_warnings(self, paths: list[str], *, action: str) -> list[str]:
        """Warnings when `action` (tune, calibrate) runs on images the model itself was fitted on."""
        return []

    @property
    def head(self) -> Head:
        """The head of a single-task run.

        Raises:
            ValueError: A multi-task run.
        """
        if len(self.tasks) > 1:
            raise ValueError(f"this run has {len(self.tasks)} tasks ({[t.name for t in self.tasks]}): tuning, "
                             "calibration, TTA and ensembles of multitask runs are not supported yet "
                             "(`winnow eval` scores every task)")
        return self.tasks[0].head

    def predict(self, images: list[str | Path] | str | Path, *, batch_size: int = 64, workers: int = 0,
                tta: str | int | None = None, tta_merge: str = "mean", strict: bool = False) -> Predictions:
        """Predict files, folders or manifests; unreadable files are skipped and listed in `Predictions.bad`.

        Args:
            images: Image files, folders (searched recursively) or CSV manifests.
            batch_size: Images per batch (each carries all its TTA views).
            workers: Loader workers: processes for a GPU model, threads for a CPU model (0: this thread).
            tta: "none", "flips", "d4" or a number of random views (see `winnow.inference.tta`); None:
                the folder's default (a run's config `tta`, "none" for ensembles and heads).
            tta_merge: "mean" or "gmean" of the views' probabilities.
            strict: Any unreadable file is an error instead.

        Raises:
            ValueError: No image can be read, or (`strict`) one cannot.
        """
        paths = collect_images([images] if isinstance(images, (str, Path)) else list(images))
        augmentation = parse_tta(self.default_tta if tta is None else tta, merge=tta_merge, seed=self.seed)
        settings = {"batch_size": batch_size, "workers": workers}
        if len(self.tasks) > 1 and augmentation.mode == "none":
            outputs = self.read_outputs(paths, lambda good: self.multitask_probabilities(good, **settings),
                                        strict=strict)
            return Predictions([paths[i] for i in outputs.rows], self.tasks, outputs.values, outputs.bad,
                               source_index=outputs.rows)
        head = self.head
        outputs = self.read_outputs(paths, lambda good: self.view_logits(good, augmentation, **settings), strict=strict)
        views = to_probabilities(head, outputs.values, calibration=self.calibration)
        merged = merge_views(views, augmentation.merge, rows_sum_to_one=head.kind != "multilabel")
        return Predictions([paths[i] for i in outputs.rows], self.tasks, merged, outputs.bad,
                           view_logits=outputs.values, decision=self.decision, calibration=self.calibration,
                           source_index=outputs.rows, tta=augmentation, rejected=outputs.rejected, reject=self.reject)

    def read_outputs(self, paths: list[str], compute: Callable[[list[str]], ReadOutputs], *,
                     strict: bool = False) -> ReadOutputs:
        """Run `compute` on the images of `paths`; skip and list every unreadable one and every repeated path.

        A file fails at its decode inside `compute`'s loader (which makes the header scan's checks, see
        `ImageDataset`'s `max_pixels`); such files and the second and later rows of a path end up in `bad`,
        and `rows` index `paths`.

        Args:
            paths: Image files `[N]`.
            compute: Outputs of a list of files (e.g. `view_logits`), rows relative to that list.
            strict: Any unreadable file is an error.

        Raises:
            ValueError: No image can be read, or (`strict`) one cannot.
        """
        with collect_decode_notes() as notes:
            kept, bad = self.readable(paths)
            try:
                outputs = compute([paths[i] for i in kept])
            except NothingRead as error:  # not one file could be decoded
                outputs = ReadOutputs(None, [], error.bad)
        log_decode_notes(notes)  # worker processes (GPU jobs) decode elsewhere: their notes are not seen here
        rows, bad = [kept[row] for row in outputs.rows], bad + outputs.bad
        check_readable(len(paths), len(rows), bad, strict=strict)
        if bad:
            log.warning("skipping %s", bad_summary(bad))
        return ReadOutputs(outputs.values, rows, bad, outputs.rejected)

    def view_logits(self, paths: list[str], augmentation: TTA, *, batch_size: int = 64,
                    workers: int = 0) -> ReadOutputs:
        """Uncalibrated softmax-form logits `[n, V, K]` of the readable images over the TTA views."""
        raise NotImplementedError

    def multitask_probabilities(self, paths: list[str], batch_size: int, workers: int) -> ReadOutputs:
        """`{task: [n, K]}` probabilities of a multi-task model on the readable images."""
        raise ValueError(f"{self.run_dir} has a single task; use predict()")

    def readable(self, paths: list[str]) -> tuple[list[int], list[tuple[str, str]]]:
        """Positions in `paths` to read (each path once), and `(path, reason)` of the repeated rows.

        Files are not opened here: a header scan before the decode that makes the same checks (see
        `read_outputs`) cost a fifth of the reading time on small images.
        """
        repeated = repeated_rows(Samples(paths, [""] * len(paths), [None] * len(paths), [None] * len(paths)))
        return [i for i in range(len(paths)) if i not in repeated], [(paths[i], why) for i, why in repeated.items()]

    def _operating_file(self, setting: bool | str | Path, default: Path) -> Path | None:
        if setting is False:
            return None
        if setting is True:
            return default if default.is_file() else None
        return Path(setting)

    def _load(self, path: Path | None, loader: Callable, what: str) -> Any:
        if path is None:
            return None
        if len(self.tasks) > 1:
            raise ValueError(f"{what} for multitask runs is not supported yet; remove {path} or pass {what}=False")
        fitted = loader(path, classes=self.classes)
        self._check_head_kind(fitted, path, what)
        for warning in self._staleness(read_json(path, what=what), path, what):
            log.warning("%s", warning)
        return fitted

    def _check_head_kind(self, fitted: Any, path: Path, what: str) -> None:
        """Refuse operating files made for a multi-label head on a softmax head, or the reverse."""
        multilabel = self.head.kind == "multilabel"
        made_for_multilabel = fitted.multilabel if what == "calibration" else isinstance(fitted, LabelThresholds)
        if made_for_multilabel != multilabel:
            made = "a multilabel head" if made_for_multilabel else "a multiclass or binary head"
            raise ValueError(f"{path} was made for {made} but {self.run_dir} has a {self.head.kind} head; it comes "
                             f"from another run: re-create it with `winnow {'calibrate' if what == 'calibration' else 'tune'}`")

    def _staleness(self, saved: dict, path: Path, what: str) -> list[str]:
        """Warnings when `path` was fitted on other weights, or (thresholds) on other calibration."""
        command = "calibrate" if what == "calibration" else "tune"
        found = []
        if saved.get("checkpoint_fingerprint", fingerprint(self.checkpoint_path)) != fingerprint(self.checkpoint_path):
            found.append(f"{path} was fitted on other weights than {self.checkpoint_path}; "
                         f"re-run `winnow {command}` for this checkpoint")
        calibrated = fingerprint(self.calibration_file)
        if what == "thresholds" and saved.get("calibration_fingerprint", calibrated) != calibrated:
            found.append(f"{path} was tuned on probabilities calibrated otherwise than now (calibration.json "
                         "added, removed or refitted since); re-run `winnow tune`")
        return found


class Predictor(ScoringModel):
    """A trained model with its preprocessing, ready for inference.

    Args:
        run_dir: Run folder from `winnow train`.
        checkpoint: A checkpoint name of the run (best, last, selected, epochNNNN) or a `.pt` path.
        device: auto, cpu, cuda, cuda:1...
        calibration: True: apply RUN/calibration.json when present; False: never; a path: that file.
        thresholds: True: apply RUN/thresholds.json when present; False: never; a path: that file.

    Raises:
        ValueError: Not a run folder, missing checkpoint, or operating files made for other classes.
    """

    def __init__(self, run_dir: str | Path, *, checkpoint: str | Path = "best", device: str = "auto",
                 calibration: bool | str | Path = True, thresholds: bool | str | Path = True) -> None:
        run_dir = Path(run_dir)
        if not RunPaths(run_dir).preprocessing.exists():
            raise ValueError(f"{run_dir} is not a winnow run folder (no preprocessing.json); "
                             "pass the folder that `winnow train` (or `winnow ensemble`) printed")
        self.config = read_saved(RunPaths(run_dir).config)
        self.default_tta = tta_views(self.config)
        if self.config.pretrain_method:
            raise ValueError(f"{run_dir} is a `winnow pretrain` run (an encoder, no classifier); train a classifier "
                             f"from it with `winnow train DATA --pretrained {run_dir}`")
        self.spec = DataSpec(**read_json(RunPaths(run_dir).preprocessing, what="preprocessing"))
        self.accel = make_accelerator(device, self.config.amp, self.config.channels_last, DistInfo())
        checkpoint_path = resolve_checkpoint(run_dir, checkpoint)
        tasks = [TaskSpec.from_saved(task) for task in self.spec.tasks]
        self.model, epoch = self._load_model(checkpoint_path, tasks)
        super().__init__(run_dir, tasks, checkpoint_path=checkpoint_path, epoch=epoch,
                         seed=self.config.seed, max_image_pixels=self.config.max_image_pixels,
                         calibration=calibration, thresholds=thresholds)

    @property
    def classes(self) -> list[str]:
        return self.spec.classes

    def _load_model(self, checkpoint_path: Path, tasks: list[TaskSpec]) -> tuple[nn.Module, int | None]:
        """The run's network with the checkpoint's evaluation weights, in eval mode, and its epoch.

        Other backends (`winnow.export.backend`) override this to run an exported file instead.
        """
        state = load_checkpoint(checkpoint_path, mmap=True)  # the optimizer state and the rest stay unread
        model = build_with_weights(lambda: create_model(
            self.config.model, num_classes=model_outputs(tasks), in_chans=self.spec.in_chans,
            stem=self.config.stem, embedding_dim=self.config.embedding_dim), owned_tensors(evaluation_weights(state)))
        return model.to(self.accel.device).eval(), state.get("epoch")

    def view_logits(self, paths: list[str], augmentation: TTA, *, batch_size: int = 64,
                    workers: int = 0) -> ReadOutputs:
        """Uncalibrated softmax-form logits `[n, V, K]` (binary heads `[0, z]`) over the TTA views."""
        outputs = self._view_outputs(self.model, paths, augmentation, batch_size, workers)
        return ReadOutputs(softmax_logits(self.head, outputs.values), outputs.rows, outputs.bad)

    def view_embeddings(self, paths: list[str], augmentation: TTA, *, batch_size: int = 64, workers: int = 0,
                        decoded_cache: bool = False) -> ReadOutputs:
        """Pooled pre-logits embeddings `[n, V, D]` (`forward_head(pre_logits=True)`) over the TTA views.

        `decoded_cache`: read the images that the run's training cached from its caches instead of decoding
        them (the same bytes; see `winnow.inference.run_cache`).
        """
        cache = run_cached_rows(self.run_dir, self.config, self.spec.preprocess(), paths) if decoded_cache else None
        return self._view_outputs(EmbeddingModel(self.model), paths, augmentation, batch_size, workers, cache=cache)

    def multitask_probabilities(self, paths: list[str], batch_size: int, workers: int) -> ReadOutputs:
        dataset = self._dataset(paths, eval_transform(self.spec.mean, self.spec.std))
        return self._run(self.model, dataset, paths, batch_size, workers,
                         to_probabilities=lambda logits: probabilities(self.tasks, logits))

    def _dataset(self, paths: list[str], transform: Callable, *, cache: CachedRows | None = None) -> ImageDataset:
        return ImageDataset(paths, [-1] * len(paths), self.spec.preprocess(), transform, cache=cache, read_hint="",
                            max_pixels=self.max_image_pixels)

    def _view_outputs(self, module: nn.Module, paths: list[str], augmentation: TTA, batch_size: int,
                      workers: int, *, cache: CachedRows | None = None) -> ReadOutputs:
        """Outputs `[n, V, F]` of `module` (the model, or its embedding) over the views of each readable image."""
        augment = {key: getattr(self.config, key) for key in AUGMENT_KEYS}
        views = build_views(augmentation, channels=self.spec.in_chans, augment=augment)
        dataset = ViewDataset(self._dataset(paths, lambda x: x, cache=cache), views,
                              seed=augmentation.seed if augmentation.mode == "random" else None)
        # the loader sends the views as read (uint8 for all but random views): ViewModel normalises per batch
        normalised = ViewModel(module, len(views), mean=self.spec.mean, std=self.spec.std)
        return self._run(normalised, dataset, paths, batch_size, workers,
                         to_probabilities=lambda outputs: outputs.float(), collate=collate_views)

    def _run(self, module: nn.Module, dataset: Dataset, paths: list[str], batch_size: int, workers: int, *,
             to_probabilities: Callable, collate: Callable = default_collate) -> ReadOutputs:
        """`module`'s outputs on every item of `dataset` whose file reads; the others are listed in `bad`."""
        # a CPU model's forward pass already has every core: worker threads cost less there than processes
        reads = skipping_loader(dataset, paths, batch_size=batch_size, workers=workers, pin_memory=self.accel.is_cuda,
                                collate=collate, threads=not self.accel.is_cuda)
        progress = Progress(len(paths), description=f"scoring with {Path(self.run_dir).name}", enabled=True)
        try:
            values = predict_probabilities(module, reads, self.accel, to_probabilities=to_probabilities,
                                           progress=progress)[0]
        finally:
            progress.close()
        return ReadOutputs(values, reads.rows, reads.bad)
