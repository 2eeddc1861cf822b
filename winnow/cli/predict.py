"""`winnow predict RUN IMAGES...`: batched inference to a CSV (with the run's calibration and thresholds).

Unreadable images are skipped and listed (path, reason) in `<out stem>.bad_files.csv` beside the CSV
(`preds.csv` -> `preds.bad_files.csv`); `--strict` makes any of them an error. A head folder with a reject
option (`winnow head --reject-tpr`) writes "unknown" as the predicted label of the images it rejects.
"""

from __future__ import annotations

import argparse

from winnow.cli.options import (INFERENCE_FLAGS, OPERATING_FLAGS, RUN_HELP, TTA_FLAGS, add_flags, operating_settings,
                                settings_of)
from winnow.data.validation import record_skipped
from winnow.inference.postprocess import UNKNOWN, describe_decision
from winnow.export.backend import BACKENDS, load_backend
from winnow.runs.layout import bad_files_beside


def add_parser(sub) -> None:
    parser = sub.add_parser("predict", help="predict classes of images with a trained run")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("images", nargs="+", help="image files, folders or CSV manifests")
    parser.add_argument("--out", default="preds.csv",
                        help="output CSV (default: preds.csv); unreadable images are listed in "
                             "<out stem>.bad_files.csv beside it")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="torch (the checkpoint) or onnx (the file from `winnow export`, run by onnxruntime); "
                             "both apply the same calibration and thresholds (default: torch)")
    parser.add_argument("--model-file", metavar="FILE", default=None,
                        help="--backend onnx: the .onnx file, its sidecar <FILE>.json beside it "
                             "(default: RUN/exports/<checkpoint>.onnx)")
    add_flags(parser, "checkpoint", *INFERENCE_FLAGS, *TTA_FLAGS, *OPERATING_FLAGS)


def run(args: argparse.Namespace) -> int:
    predictor = load_backend(args.run_dir, backend=args.backend, model_file=args.model_file,
                             checkpoint=args.checkpoint, device=args.device, **operating_settings(args))
    predictions = predictor.predict(args.images, batch_size=args.batch_size, workers=args.workers,
                                    strict=args.strict, **settings_of(args, TTA_FLAGS))
    predictions.to_csv(args.out)
    print(f"wrote {len(predictions.paths)} predictions to {args.out}")
    for line in record_skipped(predictions.bad, bad_files_beside(args.out)):
        print(line)
    if len(predictor.tasks) == 1:
        calibrated = f"; probabilities calibrated by {predictor.calibration_file}" if predictor.calibration else ""
        tta = f"; TTA {predictions.tta.label}" if predictions.tta.label else ""
        print(f"decision: {describe_decision(predictor.head, predictor.decision, reject=predictor.reject)}"
              f"{calibrated}{tta}")
    if predictions.rejected is not None:
        print(f"rejected as {UNKNOWN!r}: {int(predictions.rejected.sum())} of {len(predictions.paths)} images")
    return 0
