"""`train --profile`: the phases of the run are timed, saved in profile.json and explained."""

from __future__ import annotations

import json
import logging
import time

import torch

from conftest import fast_config
from winnow.runs.layout import PROFILE_FILE
from winnow.training.profiling import STEP_PHASES, StepClock, advice, profile_report
from winnow.training.trainer import train


def test_profile_times_every_phase_of_a_run(tmp_path, image_folder, caplog):
    with caplog.at_level(logging.INFO, logger="winnow"):
        run = train(fast_config(tmp_path, image_folder, profile=True))
    report = json.loads((run.path / PROFILE_FILE).read_text())
    phases = {row["phase"]: row for row in report["phases"]}
    assert {"setup", "first_batch", "evaluation", "checkpoint", *STEP_PHASES[1:]} <= set(phases)
    assert abs(sum(row["share"] for row in report["phases"]) - 1) < 1e-3
    assert report["steps"] > 0 and report["images"] >= report["steps"] and report["train_img_per_s"] > 0
    assert report["bottleneck"] in phases
    assert "bottleneck:" in caplog.text and "forward + loss" in caplog.text


def test_unprofiled_run_writes_no_profile(tmp_path, image_folder):
    run = train(fast_config(tmp_path, image_folder, epochs=1))
    assert not (run.path / PROFILE_FILE).exists()


def test_clock_charges_time_to_the_marked_phase():
    clock = StepClock(torch.device("cpu"))
    clock.restart()
    time.sleep(0.05)
    clock.mark("data")
    with clock.phase("evaluation"):
        time.sleep(0.02)
    clock.count_step(8)
    assert clock.seconds["data"] >= 0.05 and 0.02 <= clock.seconds["evaluation"] < 0.05
    report = profile_report(clock, workers=2, threads=2, device="cpu")
    assert report["bottleneck"] == "data" and report["images"] == 8


def test_advice_names_the_data_wait_and_the_workers():
    tips = advice({"data": 5.0, "forward": 2.0, "backward": 3.0}, total=10.0, workers=0, device="cpu")
    assert any("waits for data 50%" in tip and "now 0" in tip for tip in tips)
    compute_bound = advice({"data": 0.1, "forward": 4.0, "backward": 5.0}, total=9.1, workers=2, device="cpu")
    assert any("compute" in tip for tip in compute_bound) and not any("waits" in tip for tip in compute_bound)
