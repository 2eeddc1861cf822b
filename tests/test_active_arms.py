"""The random arm of a query and the round report, on numbers alone (no model; the CLI is in test_active_query.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from winnow.active.arm_report import compare_arms, read_previous, wilson_interval
from winnow.active.arms import check_random_arm, random_arm_size, random_picks, with_random_arm
from winnow.active.base import Selection
from winnow.active.pool import Pool


@pytest.mark.parametrize("budget, fraction, expected", [(5, 0.2, 1), (10, 0.2, 2), (5, 0.0, 0), (2, 0.01, 1),
                                                        (1, 0.5, 0), (2, 0.9, 1), (20, 0.25, 5)])
def test_random_arm_size(budget, fraction, expected):
    assert random_arm_size(budget, fraction) == expected


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5, True, "0.2"])
def test_a_random_arm_outside_0_1_is_refused(fraction):
    with pytest.raises(ValueError, match=r"random_arm \(--random-arm\): expected a fraction of the budget in \[0, 1\)"):
        check_random_arm(fraction)


def test_random_picks_avoid_the_strategy_picks_and_follow_the_seed():
    taken = np.arange(0, 100, 3)
    picks = random_picks(taken, 100, 20, seed=7)
    assert len(set(picks)) == 20 and not set(picks) & set(taken)
    np.testing.assert_array_equal(picks, random_picks(taken, 100, 20, seed=7))
    assert not np.array_equal(picks, random_picks(taken, 100, 20, seed=8))
    assert sorted(random_picks(taken, 100, 500)) == sorted(set(range(100)) - set(taken))  # the pool runs out


def test_with_random_arm_appends_the_random_picks_with_their_arm():
    pool = Pool([f"p{i}.png" for i in range(6)], np.full((6, 2), 0.5))
    strategy = Selection(np.array([4, 1]), ["p4.png", "p1.png"], np.array([0.9, 0.8]), ["a", "b"])
    merged, arms = with_random_arm(strategy, pool, np.arange(6) / 10, 2, seed=0)
    assert arms == ["strategy", "strategy", "random", "random"]
    assert merged.paths[:2] == ["p4.png", "p1.png"] and not {4, 1} & set(merged.indices[2:])
    np.testing.assert_allclose(merged.scores[2:], merged.indices[2:] / 10)
    assert merged.reasons[2].startswith("random arm")


def _rows(arm: str, predicted: list[str], start: int) -> list[dict[str, str]]:
    return [{"path": f"/nowhere/img{start + i}.png", "arm": arm, "predicted": p} for i, p in enumerate(predicted)]


def test_compare_arms_counts_mispredictions_per_arm_on_labelled_picks():
    rows = _rows("strategy", ["a", "b", "b", "a"], 0) + _rows("random", ["a"] * 6, 10) + _rows("random", ["b"], 99)
    labels = {f"/nowhere/img{i}.png": "a" for i in (0, *range(10, 16))} | {"/nowhere/img1.png": "a"}
    report = compare_arms(rows, labels, previous="old.csv")
    assert (report.strategy.labelled, report.strategy.errors) == (2, 1)  # img2, img3 not labelled yet
    assert (report.random.labelled, report.random.errors) == (6, 0)  # img99 not labelled
    assert report.verdict == "beats random" and report.accuracy == 1.0
    assert "strategy beats random" in "\n".join(report.lines())
    assert "accuracy on the pool (random arm): 1.000" in report.lines()[-1]


def test_compare_arms_says_when_it_cannot_tell_or_the_strategy_does_not_beat_random():
    labels = {f"/nowhere/img{i}.png": "a" for i in range(20)}
    few = compare_arms(_rows("strategy", ["b"] * 5, 0) + _rows("random", ["a"] * 4, 10), labels, previous="o.csv")
    assert few.verdict == "too few random picks to tell" and "0 of 4 labelled picks" in few.lines()[0]
    tie = compare_arms(_rows("strategy", ["b", "a"], 0) + _rows("random", ["b", "a"] * 3, 10), labels, previous="o")
    assert tie.strategy.error_rate == tie.random.error_rate == 0.5 and tie.verdict == "does not beat random"


def test_compare_arms_refuses_a_round_with_nothing_labelled():
    with pytest.raises(ValueError, match="old.csv: expected some of its 3 images.*label them and retrain on them"):
        compare_arms(_rows("random", ["a"] * 3, 0), {}, previous="old.csv", run="runs/r1")


def test_wilson_interval_matches_the_formula():
    z, n, p = 1.959963984540054, 6, 5 / 6
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(
        p * (1 - p) / n + z * z / (4 * n * n))
    np.testing.assert_allclose(wilson_interval(5, 6), (centre - half, centre + half), rtol=1e-9)


def test_read_previous_resolves_relative_paths_against_the_csv_folder_as_label_does(tmp_path):
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "a.png").write_bytes(b"")
    previous = tmp_path / "to_label.csv"
    previous.write_text("path,arm,predicted\npool/a.png,random,x\nelsewhere/b.png,strategy,y\n")
    rows = read_previous(previous)
    assert [r["path"] for r in rows] == [str(tmp_path / "pool" / "a.png"), "elsewhere/b.png"]
    previous.write_text("path,arm,predicted\npool/a.png,both,x\n")
    with pytest.raises(ValueError, match=r"to_label.csv line 2: expected arm 'strategy' or 'random', got 'both'"):
        read_previous(previous)
