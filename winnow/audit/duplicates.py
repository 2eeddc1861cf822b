"""Exact duplicates (same decoded pixels), near duplicates (perceptual hash, and cosine neighbours of a run's
embeddings) and groups in two splits.

Within a split a duplicate is a warning (it weighs twice); across splits it is an error (a leak: the
model is scored on what it trained on), and so is a `group` present in two splits. `--fix` keeps one
copy of an exact duplicate, and removes the copy of a leak on the smaller split's side.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from winnow.audit.base import ERROR, WARNING, AuditContext, Check, Issue
from winnow.audit.html import card, issue_table, pair
from winnow.audit.neighbours import close_pairs, unit_rows
from winnow.reporting.html import paragraph

PAIRS_SHOWN = 12


class DuplicatesCheck(Check):
    """Duplicates and leaks.

    Args:
        phash_max: Largest Hamming distance (of 64 bits) between perceptual hashes of near duplicates.
        cosine_min: Smallest cosine similarity of embeddings of near duplicates (with a run).
        confirm_phash: With embeddings, a pair also needs a hash distance up to this (a second signal).
        neighbours: Neighbours searched per image.
    """

    name = "duplicates"
    title = "Duplicates and leaks"

    def __init__(self, phash_max: int = 4, cosine_min: float = 0.98, confirm_phash: int = 16,
                 neighbours: int = 5) -> None:
        self.phash_max, self.cosine_min, self.confirm_phash = phash_max, cosine_min, confirm_phash
        self.neighbours = neighbours

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        self.split_sizes_ = Counter(context.samples.splits[i] for i in context.good)
        self.pairs_: list[tuple[int, int, str]] = []
        issues = self._exact(context) + self._near(context) + self._group_leaks(context)
        found = Counter(issue.issue for issue in issues)
        line = (f"{found['exact_duplicate']} exact and {found['near_duplicate']} near duplicate(s) within splits, "
                f"{found['leak']} duplicate(s) across splits, {found['group_leak']} image(s) of groups in two splits")
        return issues, {"found": dict(found), "phash_max": self.phash_max, "cosine_min": self.cosine_min,
                        "embeddings": bool(context.embedding_source), "line": line}

    def _smaller_last(self, context: AuditContext, rows: list[int]) -> list[int]:
        """Rows ordered so that the first is the one to keep: in the largest split, earliest row."""
        return sorted(rows, key=lambda row: (-self.split_sizes_[context.samples.splits[row]], row))

    def _exact(self, context: AuditContext) -> list[Issue]:
        by_hash = defaultdict(list)
        for row in context.good:
            by_hash[context.facts.pixel_hash[row]].append(int(row))
        issues = []
        for rows in by_hash.values():
            keep, *others = self._smaller_last(context, rows)
            for row in others:
                issues.append(self._issue(context, row, keep, "same decoded pixels as", 0.0, exact=True))
                self.drop_.add(row)
                self.pairs_.append((keep, row, "exact"))
        return issues

    def _near(self, context: AuditContext) -> list[Issue]:
        good, samples, issues = context.good, context.samples, []
        for i, j, distance, how in self._near_pairs(context):
            a, b = int(good[i]), int(good[j])
            if context.facts.pixel_hash[a] == context.facts.pixel_hash[b]:
                continue  # an exact duplicate, already listed
            keep, other = self._smaller_last(context, [a, b])
            issues.append(self._issue(context, other, keep, f"near duplicate ({how}) of", distance, exact=False))
            if samples.splits[keep] != samples.splits[other]:
                self.drop_.add(other)
            self.pairs_.append((keep, other, how))
        return issues

    def _near_pairs(self, context: AuditContext) -> list[tuple[int, int, float, str]]:
        """`(i, j, score, how)` over the readable rows: hash pairs, and embedding pairs the hash confirms."""
        bits = context.facts.phash[context.good].astype(np.float32)
        hamming = lambda i, j: int(np.abs(bits[i] - bits[j]).sum())  # noqa: E731
        pairs = {(i, j): (float(hamming(i, j)), f"hash distance {hamming(i, j)}")
                 for i, j, _ in close_pairs(bits, np.sqrt(self.phash_max) + 1e-6, k=self.neighbours)}
        if context.embeddings is not None:
            vectors = unit_rows(context.embeddings[context.good])
            radius = np.sqrt(2 - 2 * self.cosine_min)
            for i, j, distance in close_pairs(vectors, radius, k=self.neighbours):
                if (i, j) not in pairs and hamming(i, j) <= self.confirm_phash:
                    cosine = 1 - distance**2 / 2
                    pairs[i, j] = (float(hamming(i, j)), f"cosine {cosine:.3f}, hash distance {hamming(i, j)}")
        return [(i, j, score, how) for (i, j), (score, how) in sorted(pairs.items())]

    def _issue(self, context: AuditContext, row: int, keep: int, what: str, score: float, *, exact: bool) -> Issue:
        samples = context.samples
        across = samples.splits[row] != samples.splits[keep]
        kind = "leak" if across else ("exact_duplicate" if exact else "near_duplicate")
        detail = f"{what} {samples.paths[keep]} ({samples.splits[keep]}, label {samples.labels[keep]})"
        if across:
            detail += "; across splits: the model would be scored on an image it trained on"
        return Issue(samples.paths[row], kind, ERROR if across else WARNING, score, detail,
                     label=samples.labels[row], split=samples.splits[row] or "")

    def _group_leaks(self, context: AuditContext) -> list[Issue]:
        samples, members = context.samples, defaultdict(list)
        for row in context.good:
            if samples.groups[row] is not None:
                members[samples.groups[row]].append(int(row))
        issues = []
        for group, rows in members.items():
            per_split = Counter(samples.splits[row] for row in rows)
            if len(per_split) < 2:
                continue
            home = max(per_split, key=lambda split: (per_split[split], self.split_sizes_[split]))
            spread = ", ".join(f"{split} ({n})" for split, n in per_split.items())
            for row in rows:
                if samples.splits[row] != home:
                    issues.append(Issue(samples.paths[row], "group_leak", ERROR, float(per_split[samples.splits[row]]),
                                        f"group {group!r} is in {spread}; a group must stay in one split",
                                        label=samples.labels[row], split=samples.splits[row] or ""))
                    self.drop_.add(row)
        return issues

    def _html(self, context: AuditContext) -> str:
        how = (f"decoded pixels (SHA-1) for exact copies; perceptual hash (imagehash pHash, distance <= "
               f"{self.phash_max} of 64 bits)" + (f" and cosine >= {self.cosine_min} between embeddings of "
               f"{context.embedding_source} (hash distance <= {self.confirm_phash})" if context.embedding_source
               else "") + " for near copies.")
        body = paragraph("Found from " + how + " Within a split: warning; across splits or a group in two "
                         "splits: error (a leak). --fix removes exact copies and the leaked side.")
        samples = context.samples
        for keep, other, kind in self.pairs_[:PAIRS_SHOWN]:
            body += pair(card(samples.paths[keep], f"{samples.splits[keep]} / {samples.labels[keep]}"),
                         card(samples.paths[other], f"{samples.splits[other]} / {samples.labels[other]}"), kind)
        return body + (issue_table(self.issues_) if self.issues_ else paragraph("No duplicates or leaks found."))
