"""`winnow report RUN [DATA]`: one self-contained HTML page about a run (see `winnow.reporting.report`)."""

from winnow.reporting.report import SECTIONS, default_report_path, write_report

__all__ = ["SECTIONS", "default_report_path", "write_report"]
