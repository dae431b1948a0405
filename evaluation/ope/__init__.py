"""OPE estimators (DM, TIS, PDIS, DR and self-normalised forms), their confidence intervals
and fitted Q evaluation."""

from evaluation.ope.estimators import ESTIMATORS, KERNELS, estimate_all, kernel_log_ratio, log_ratio
from evaluation.ope.fqe import FQEConfig, fqe
from evaluation.ope.intervals import INTERVALS, confidence_intervals, trajectory_values

__all__ = ["ESTIMATORS", "INTERVALS", "KERNELS", "FQEConfig", "confidence_intervals", "estimate_all",
           "fqe", "kernel_log_ratio", "log_ratio", "trajectory_values"]
