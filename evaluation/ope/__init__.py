"""OPE estimators (DM, TIS, PDIS, DR and self-normalised forms), their confidence intervals,
fitted Q evaluation, and cumulative-distribution (return CDF) estimators with risk
functionals."""

from evaluation.ope.cumulative import CD_ESTIMATORS, cumulative_distributions, risk_functionals
from evaluation.ope.estimators import ESTIMATORS, KERNELS, estimate_all, kernel_log_ratio, log_ratio
from evaluation.ope.fqe import FQEConfig, fqe
from evaluation.ope.intervals import INTERVALS, confidence_intervals, trajectory_values

__all__ = ["CD_ESTIMATORS", "cumulative_distributions", "risk_functionals", "ESTIMATORS", "INTERVALS", "KERNELS", "FQEConfig", "confidence_intervals", "estimate_all",
           "fqe", "kernel_log_ratio", "log_ratio", "trajectory_values"]
