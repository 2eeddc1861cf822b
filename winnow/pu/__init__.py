"""Positive-unlabelled tools above training: class-prior estimation (`winnow.pu.prior`) and what a wrong
prior costs on a labelled test split (`winnow.pu.sensitivity`).

The PU losses live in `winnow.losses.pu` and the PU validation measures in `winnow.metrics.pu`, below
training, since the training loop needs them; the prior is a number in the run's config that
`winnow train --prior auto` estimates here before training starts.
"""

from winnow.pu.prior import ESTIMATORS, PriorEstimate, estimate_prior

__all__ = ["ESTIMATORS", "PriorEstimate", "estimate_prior"]  # winnow.pu.sensitivity loads models: import it there
