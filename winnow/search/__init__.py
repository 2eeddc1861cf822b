"""Hyperparameter search (`winnow search`, Optuna) and the recipe pilot of `winnow train --recipe auto`."""
