"""Progress: a bar on a terminal, plain lines (every N seconds or N percent) in logs."""

from __future__ import annotations

import io
import logging

import pytest

from winnow.training.progress import Every, Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "winnow"]


def run(progress: Progress, clock: FakeClock, *, steps: int, count: int, seconds_per_step: float) -> None:
    for _ in range(steps):
        clock.now += seconds_per_step
        progress.update(count, loss=0.5, img_per_s=100.0)
    progress.close()


def test_off_a_terminal_a_plain_line_every_interval_and_no_carriage_returns(caplog):
    caplog.set_level(logging.INFO, logger="winnow")
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(1000, description="epoch 1/3", enabled=True, every="30s", stream=stream, clock=clock)
    run(progress, clock, steps=100, count=10, seconds_per_step=1.0)  # 100 s of work
    written = lines(caplog)
    assert len(written) == 4  # at 30, 60 and 90 s, then the end
    assert written[0].startswith("epoch 1/3: 300/1000 img (30%)") and "loss 0.5000" in written[0]
    assert "eta 1:10" in written[0] and written[-1].startswith("epoch 1/3: 1000/1000 img (100%)")
    assert "\r" not in stream.getvalue()


def test_off_a_terminal_a_line_every_tenth_of_the_work(caplog):
    caplog.set_level(logging.INFO, logger="winnow")
    clock = FakeClock()
    progress = Progress(200, description="predict", enabled=True, every="10%", stream=io.StringIO(), clock=clock)
    run(progress, clock, steps=40, count=5, seconds_per_step=0.01)
    assert [line.split(":")[1].split()[0] for line in lines(caplog)] == [f"{20 * k}/200" for k in range(1, 11)]


def test_short_work_off_a_terminal_writes_nothing(caplog):
    caplog.set_level(logging.INFO, logger="winnow")
    clock = FakeClock()
    progress = Progress(100, description="epoch 1/1", enabled=True, stream=io.StringIO(), clock=clock)
    run(progress, clock, steps=10, count=10, seconds_per_step=0.5)  # 5 s: under the 30 s interval
    assert lines(caplog) == []


def test_on_a_terminal_the_bar_is_drawn_and_no_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="winnow")
    stream, clock = Terminal(), FakeClock()
    progress = Progress(100, description="epoch 2/5", enabled=True, stream=stream, clock=clock)
    run(progress, clock, steps=10, count=10, seconds_per_step=10.0)
    assert lines(caplog) == [] and "epoch 2/5" in stream.getvalue()


def test_disabled_progress_writes_nothing_anywhere(caplog):
    caplog.set_level(logging.INFO, logger="winnow")
    stream, clock = io.StringIO(), FakeClock()
    run(Progress(100, description="x", enabled=False, stream=stream, clock=clock), clock, steps=10, count=10,
        seconds_per_step=60.0)
    assert lines(caplog) == [] and stream.getvalue() == ""


@pytest.mark.parametrize("text, expected", [("30s", Every(seconds=30.0)), ("2.5s", Every(seconds=2.5)),
                                            ("10%", Every(fraction=0.1)), (" 100 % ", Every(fraction=1.0))])
def test_every_parses_seconds_and_percent(text, expected):
    assert Every.parse(text) == expected


@pytest.mark.parametrize("text", ["30", "0s", "-5s", "150%", "ten", "30 min"])
def test_every_rejects_other_forms_with_the_fix(text):
    with pytest.raises(ValueError, match=r"progress_every must be a number of seconds such as '30s'"):
        Every.parse(text)
