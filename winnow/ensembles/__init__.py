"""Ensembles of trained runs (`winnow ensemble`): a folder that predict, eval, tune and calibrate accept."""
