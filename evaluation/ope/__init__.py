"""OPE estimators (DM, TIS, PDIS, DR and self-normalised forms) and fitted Q evaluation."""

from evaluation.ope.estimators import ESTIMATORS, KERNELS, estimate_all, kernel_log_ratio, log_ratio
from evaluation.ope.fqe import FQEConfig, fqe

__all__ = ["ESTIMATORS", "KERNELS", "FQEConfig", "estimate_all", "fqe", "kernel_log_ratio", "log_ratio"]
