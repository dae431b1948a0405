"""OPE estimators (DM, TIS, PDIS, DR and self-normalised forms), their confidence intervals,
fitted Q evaluation, cumulative-distribution (return CDF) estimators with risk
functionals, and marginal estimators (SAM-IS, SAM-DR) with MWL weights."""

from evaluation.ope.cumulative import CD_ESTIMATORS, cumulative_distributions, risk_functionals
from evaluation.ope.estimators import (ESTIMATORS, KERNELS, estimate_all, kernel_log_ratio,
                                       log_ratio, sample_kernel)
from evaluation.ope.fqe import FQEConfig, fqe
from evaluation.ope.intervals import INTERVALS, confidence_intervals, trajectory_values
from evaluation.ope.marginal import (MARGINAL_ESTIMATORS, MAX_STEP_MASS, MWLConfig,
                                     estimate_marginal, mwl, step_mass)

__all__ = ["CD_ESTIMATORS", "cumulative_distributions", "risk_functionals", "ESTIMATORS",
           "INTERVALS", "KERNELS", "FQEConfig", "MARGINAL_ESTIMATORS", "MAX_STEP_MASS",
           "MWLConfig", "confidence_intervals", "estimate_all", "estimate_marginal", "fqe",
           "kernel_log_ratio", "log_ratio", "mwl", "sample_kernel", "step_mass", "trajectory_values"]
