"""`winnow report RUN [DATA]`: one self-contained HTML page about a run (see `winnow.reporting.report`)."""

from winnow.reporting.report import SECTIONS, write_report

__all__ = ["SECTIONS", "write_report"]
