"""Run folders: atomic writes, provenance, the run layout and the list of runs."""
