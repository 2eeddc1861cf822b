"""Embedding benchmark on chromosomes-qband: metric losses, label efficiency, few-shot classes, open set.

One split of `../shared/data/chromosomes-qband` by metaphase spread (winnow's grouped split, seed 0).
Four classes drawn once (seed 0, among the autosomes) are held out of every backbone's training: the
"known" data has the other 20 classes.

1. Losses: a backbone per loss and seed on the known classes (`ce`, `arcface`, `supcon`, `triplet`,
   `ce + center`; the metric terms beside cross-entropy in a `joint` loss; every run with the
   `m_per_class` sampler and a 128-d projection). Scored on the known test split: the softmax
   head's accuracy, `knn` and `gmm` heads fitted on the frozen train-split embeddings, MAP@R and
   precision@1 (test images against each other).
2. Few-shot (same backbones): `centroid` and `knn` heads fitted on k = 1, 5, 10 train images of
   each held-out class (drawn per seed), accuracy on every test image of those 4 classes.
   Open set: `centroid` and `knn` heads of the known classes with a reject option fitted on the
   known val split to accept 95%; the share of bccd-wbc images (blood cells) rejected, and of known
   test images rejected.
3. Label efficiency (known classes): 5%, 20% and 100% of the train and val labels (per class, drawn
   per seed; test kept whole); from scratch vs an encoder pretrained without labels on every Q-band
   image (`autoencoder`, `simclr`; pretrained once, seed 0); linear probe (`--freeze backbone`)
   and fine-tune. Fewer labels get more epochs (`--epochs` x 0.2 / fraction, at least `--epochs`).

Every training is a `winnow train` / `winnow pretrain` subprocess whose CPU seconds are recorded;
heads and metrics use the library in this process (`winnow.embeddings`). Finished runs are reused,
so a killed bench resumes. Run:

    python bench/embeddings.py --out bench/results/embeddings_chromosomes.md [--seeds 0 1 2] [--parts ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from harness import ROOT, SHARED, mean_std, run_measured, winnow_train_command

QBAND = SHARED / "chromosomes-qband" / "manifest.csv"
BCCD = SHARED / "bccd-wbc"
HELD_OUT = 4
SHOTS = (1, 5, 10)
FRACTIONS = (0.05, 0.2, 1.0)
PROJECTION = ["--embedding-dim", "128", "--sampler", "m_per_class", "--sampler-params", "{m: 4}"]
LOSSES = {
    "ce": ["--loss", "ce"],
    "arcface": ["--loss", "joint", "--loss-params", "{terms: [{loss: ce}, {loss: arcface, weight: 0.1}]}"],
    "supcon": ["--loss", "joint", "--loss-params", "{terms: [{loss: ce}, {loss: supcon, weight: 0.5}]}"],
    "triplet": ["--loss", "joint",
                "--loss-params", "{terms: [{loss: ce}, {loss: triplet, weight: 0.5, params: {miner: batch_hard}}]}"],
    "ce + center": ["--loss", "joint", "--loss-params", "{terms: [{loss: ce}, {loss: center, weight: 0.01}]}"],
}
INITS = ("scratch", "autoencoder", "simclr")
MODES = {"probe": ["--freeze", "backbone"], "finetune": []}
WHOLE = ("cpu_s", "epochs")  # printed without decimals


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "embeddings_chromosomes.md")
    parser.add_argument("--work", type=Path, default=Path("/tmp/winnow-bench-embeddings"))
    parser.add_argument("--parts", nargs="+", default=["losses", "efficiency"], choices=["losses", "efficiency"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--img-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of a backbone on all known labels")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--table-only", action="store_true", help="write the table from finished results only")
    return parser.parse_args(argv)


def common_flags(args) -> list[str]:
    return ["--model", args.model, "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
            "--tta", "none"]


# --- data -------------------------------------------------------------------------------------------------


def write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "group"])
        writer.writerows(rows)
    return path


def split_rows(work: Path) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Rows `(path, label, split, group)` of the grouped split (seed 0) and the held-out classes."""
    from winnow.data.splits import assign_splits

    samples = assign_splits([str(QBAND)], seed=0)
    rows = list(zip(samples.paths, samples.labels, samples.splits, samples.groups))
    autosomes = sorted({label for label in samples.labels if int(label) <= 22}, key=int)
    held = sorted(np.random.default_rng(0).choice(autosomes, HELD_OUT, replace=False).tolist(), key=int)
    return rows, held


def manifests(work: Path) -> tuple[Path, Path, list[str]]:
    """known.csv (20 classes) and held.csv (the held-out 4), written once."""
    rows, held = split_rows(work)
    known = write_manifest(work / "known.csv", [r for r in rows if r[1] not in held])
    return known, write_manifest(work / "held.csv", [r for r in rows if r[1] in held]), held


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def per_class_draw(rows: list[dict], count, rng: np.random.Generator) -> list[dict]:
    """`count(n)` rows of each class (n: the class's row count), drawn without replacement."""
    picked = []
    for label in sorted({r["label"] for r in rows}):
        members = [r for r in rows if r["label"] == label]
        order = rng.permutation(len(members))[: count(len(members))]
        picked += [members[i] for i in sorted(order)]
    return picked


def fraction_manifest(known: Path, fraction: float, seed: int, work: Path) -> Path:
    """known.csv with `fraction` of each class's train and val rows (at least 2 and 1); test whole."""
    path = work / "fractions" / f"known-{fraction:g}-s{seed}.csv"
    if path.exists():
        return path
    rows, rng = read_rows(known), np.random.default_rng(1000 + seed)
    kept = []
    for split, floor in (("train", 2), ("val", 1)):
        part = [r for r in rows if r["split"] == split]
        kept += per_class_draw(part, lambda n: max(floor, round(n * fraction)), rng)
    kept += [r for r in rows if r["split"] == "test"]
    return write_manifest(path, [(r["path"], r["label"], r["split"], r["group"]) for r in kept])


# --- runs -------------------------------------------------------------------------------------------------


def trained(command: list[str], run: Path, work: Path) -> dict:
    """Run a `winnow train`/`pretrain` command unless `run` finished already; its summary and CPU seconds."""
    cost_file = run / "bench_cost.json"
    if not cost_file.exists():
        measured = run_measured(command, log=work / "logs" / f"{run.name}.log")
        if measured.returncode != 0:
            raise RuntimeError(f"{run.name} failed; see {work / 'logs' / (run.name + '.log')}")
        cost_file.write_text(json.dumps({"cpu_s": measured.cpu_s, "wall_s": measured.wall_s}))
    return {**json.loads((run / "summary.json").read_text()), **json.loads(cost_file.read_text())}


def train_run(data: Path, name: str, flags: list[str], *, seed: int, epochs: int, work: Path, args) -> tuple[Path, dict]:
    command = winnow_train_command(str(data), [*common_flags(args), *flags], seed=seed, epochs=epochs,
                                   out=work / "runs", name=name, workers=args.workers, device=args.device)
    return work / "runs" / name, trained(command, work / "runs" / name, work)


def pretrain_run(method: str, work: Path, args) -> Path:
    name = f"pretrain-{method}"
    command = [sys.executable, "-m", "winnow.cli.main", "pretrain", str(QBAND), "--method", method,
               "--model", args.model, "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
               "--epochs", str(args.pretrain_epochs), "--seed", "0", "--workers", str(args.workers),
               "--device", args.device, "--out", str(work / "runs"), "--name", name, "--no-progress"]
    trained(command, work / "runs" / name, work)
    return work / "runs" / name


# --- scoring on embeddings --------------------------------------------------------------------------------


class Embedded:
    """Embeddings `[N, D]` of a run on some data, with labels and splits, sliced by split or label."""

    def __init__(self, run: Path, data: Path | str, args) -> None:
        from winnow.embeddings.extract import embed

        found = embed(run, data, device=args.device, workers=args.workers)
        self.x, self.labels = found.embeddings, np.asarray(found.labels)
        self.splits = np.asarray(found.splits)

    def rows(self, split: str | None = None, *, mask: np.ndarray | None = None) -> np.ndarray:
        keep = np.ones(len(self.x), bool) if split is None else self.splits == split
        return keep if mask is None else keep & mask


def head_accuracy(kind: str, fit_x, fit_y, test_x, test_y, *, seed: int) -> float | str:
    """Test accuracy of a head fitted on `fit_x [n, D]`; the error message where the head refuses the data."""
    from winnow.embeddings.heads import make_head

    classes = sorted(set(fit_y))
    codes = {c: i for i, c in enumerate(classes)}
    try:
        head = make_head(kind, seed=seed).fit(fit_x, [codes[c] for c in fit_y], n_classes=len(classes))
    except ValueError as error:
        return f"refused: {error}"
    return float(np.mean(head.predict(test_x) == np.asarray([codes[c] for c in test_y])))


def loss_scores(known: Embedded, summary: dict, seed: int) -> dict:
    from winnow.embeddings.quality import embedding_quality

    train, test = known.rows("train"), known.rows("test")
    scores = {"softmax": summary["test"]["test_accuracy"], "cpu_s": summary["cpu_s"]}
    for kind in ("knn", "gmm"):
        scores[kind] = head_accuracy(kind, known.x[train], known.labels[train], known.x[test], known.labels[test],
                                     seed=seed)
    quality = embedding_quality(known.x[test], known.labels[test], seed=seed)
    scores.update(map_at_r=quality["mean_average_precision_at_r"], precision_at_1=quality["precision_at_1"])
    return scores


def fewshot_scores(held: Embedded, seed: int) -> dict:
    """Accuracy of centroid and knn heads fitted on k train images of each held-out class."""
    train, test = held.rows("train"), held.rows("test")
    scores = {}
    for k in SHOTS:
        rng = np.random.default_rng(2000 + seed)
        picked = [int(i) for label in sorted(set(held.labels[train]))
                  for i in rng.choice(np.flatnonzero(train & (held.labels == label)), k, replace=False)]
        for kind in ("centroid", "knn"):
            scores[f"{kind} k={k}"] = head_accuracy(kind, held.x[picked], held.labels[picked], held.x[test],
                                                    held.labels[test], seed=seed)
    return scores


def openset_scores(known: Embedded, foreign: np.ndarray, seed: int) -> dict:
    """Share of foreign images `[M, D]` rejected by heads of the known classes (95% of known val accepted)."""
    from winnow.embeddings.heads import make_head

    classes = sorted(set(known.labels))
    codes = np.asarray([classes.index(c) for c in known.labels])
    train, val, test = known.rows("train"), known.rows("val"), known.rows("test")
    scores = {}
    for kind in ("centroid", "knn"):
        head = make_head(kind, seed=seed).fit(known.x[train], codes[train], n_classes=len(classes))
        head.fit_reject(known.x[val], codes[val], tpr=0.95)
        scores[f"{kind} foreign rejected"] = float(head.reject(foreign).mean())
        scores[f"{kind} known test rejected"] = float(head.reject(known.x[test]).mean())
    return scores


def backbone_results(run: Path, summary: dict, held_csv: Path, seed: int, args) -> dict:
    from winnow.embeddings.extract import embed

    known = Embedded(run, "all", args)
    held = Embedded(run, held_csv, args)
    foreign = embed(run, BCCD, device=args.device, workers=args.workers).embeddings
    return {**loss_scores(known, summary, seed), **fewshot_scores(held, seed),
            **openset_scores(known, foreign, seed)}


# --- parts ------------------------------------------------------------------------------------------------


def cached(results: dict, key: str, compute) -> dict:
    if key not in results:
        results[key] = compute()
    return results[key]


def losses_part(results: dict, seed: int, known: Path, held: Path, args) -> None:
    for loss in args.losses:
        def compute(loss=loss):
            name = f"loss-{loss.replace(' + ', '-')}-s{seed}"
            run, summary = train_run(known, name, [*LOSSES[loss], *PROJECTION], seed=seed, epochs=args.epochs,
                                     work=args.work, args=args)
            return backbone_results(run, summary, held, seed, args)
        cached(results, f"losses|{loss}|{seed}", compute)
        save_results(results, args.work)


def init_flags(init: str, pretrained: dict[str, Path]) -> list[str]:
    return [] if init == "scratch" else ["--pretrained", str(pretrained[init])]


def efficiency_part(results: dict, seed: int, known: Path, pretrained: dict[str, Path], args) -> None:
    for fraction in FRACTIONS:
        data = fraction_manifest(known, fraction, seed, args.work)
        epochs = max(args.epochs, math.ceil(args.epochs * 0.2 / fraction))
        for init in INITS:
            for mode, flags in MODES.items():
                def compute(init=init, mode=mode, flags=flags):
                    name = f"eff-{fraction:g}-{init}-{mode}-s{seed}"
                    _, summary = train_run(data, name, [*init_flags(init, pretrained), *flags], seed=seed,
                                           epochs=epochs, work=args.work, args=args)
                    test = summary["test"]
                    return {"accuracy": test["test_accuracy"], "balanced_accuracy": test["test_balanced_accuracy"],
                            "cpu_s": summary["cpu_s"], "epochs": epochs}
                cached(results, f"efficiency|{fraction:g}|{init}|{mode}|{seed}", compute)
                save_results(results, args.work)


def save_results(results: dict, work: Path) -> None:
    from winnow.runs.files import write_json

    write_json(work / "results.json", results)


def load_results(work: Path) -> dict:
    path = work / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


# --- table ------------------------------------------------------------------------------------------------


def cell(values: list, seeds: int, *, digits: int = 3) -> str:
    """`mean ± std` of the numbers in `values` (one per finished seed), `(n=k)` where fewer than `seeds`."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    if not numbers:
        return values[0].split(":")[0] if values else "-"
    text = mean_std(numbers, digits=digits) if len(numbers) > 1 else f"{numbers[0]:.{digits}f}"
    return text + (f" (n={len(numbers)})" if len(numbers) != seeds else "")


def collect(results: dict, prefix: str) -> dict[tuple, dict[str, list]]:
    """Results under `prefix|...|seed` grouped by the middle keys: {keys: {measure: [per seed]}}."""
    grouped: dict[tuple, dict[str, list]] = {}
    for key, scores in results.items():
        parts = key.split("|")
        if parts[0] == prefix:
            for measure, value in scores.items():
                grouped.setdefault(tuple(parts[1:-1]), {}).setdefault(measure, []).append(value)
    return grouped


def table(title: str, grouped: dict, names: list[str], measures: list[str], seeds: int) -> list[str]:
    lines = [f"**{title}**", "", "| " + " | ".join(names + measures) + " |", "|" + " --- |" * (len(names) + len(measures))]
    for keys, scores in grouped.items():
        cells = [cell(scores.get(m, []), seeds, digits=0 if m in WHOLE else 3) for m in measures]
        lines.append("| " + " | ".join([*keys, *cells]) + " |")
    return lines + [""]


def markdown(results: dict, held: list[str], args) -> str:
    """The tables of the finished results of `--seeds` (a cell that misses a seed says n=)."""
    results = {k: v for k, v in results.items() if int(k.split("|")[-1]) in args.seeds}
    losses = collect(results, "losses")
    seeds = sorted({int(k.split("|")[-1]) for k in results})
    lines = [f"chromosomes-qband, split by spread; classes {', '.join(held)} held out of backbone training; "
             f"{args.model} at {args.img_size} px, batch {args.batch_size}, {args.epochs} epochs on all labels; "
             f"seeds {seeds}; mean ± std over seeds (n= where fewer finished). CPU s: user+sys of the training.", ""]
    lines += table("Losses (20 known classes, test split): accuracy, retrieval", losses, ["loss"],
                   ["softmax", "knn", "gmm", "map_at_r", "precision_at_1", "cpu_s"], len(seeds))
    shots = [f"{kind} k={k}" for k in SHOTS for kind in ("centroid", "knn")]
    lines += table("Few-shot: 4 held-out classes, accuracy on their test images", losses, ["backbone loss"], shots,
                   len(seeds))
    lines += table("Open set: share rejected (reject option fitted to accept 95% of known val)", losses,
                   ["backbone loss"], [f"{k} {w} rejected" for k in ("centroid", "knn") for w in ("foreign", "known test")],
                   len(seeds))
    lines += table("Label efficiency (20 known classes, test split)", collect(results, "efficiency"),
                   ["labels", "init", "mode"], ["accuracy", "balanced_accuracy", "cpu_s", "epochs"], len(seeds))
    return "\n".join(lines)


def run_parts(results: dict, known: Path, held_csv: Path, args) -> None:
    """Seed by seed, so that a bench stopped early has every part for its first seeds."""
    for seed in args.seeds:
        if "losses" in args.parts:
            losses_part(results, seed, known, held_csv, args)
        if "efficiency" in args.parts:
            pretrained = {method: pretrain_run(method, args.work, args) for method in INITS[1:]}
            efficiency_part(results, seed, known, pretrained, args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not QBAND.exists():
        print(f"skipped: {QBAND} is absent (see ../shared/data/README.md)")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    known, held_csv, held = manifests(args.work)
    print(f"held-out classes: {held}")
    results = load_results(args.work)
    start = time.perf_counter()
    if not args.table_only:
        run_parts(results, known, held_csv, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, held, args))
    print(args.out.read_text())
    print(f"bench wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
