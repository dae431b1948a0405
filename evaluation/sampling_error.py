"""Sampling error of a batch of on-policy data (PROPS's measure), for evaluation code.

The implementation lives in `algorithms.common.sampling_error`, since PROPS computes it
during training and `algorithms/` may not import `evaluation/`; this module re-exports
it for analyses of logged data.
"""

from algorithms.common.sampling_error import (  # pylint: disable=unused-import
    FitConfig, gaussian_kl, gaussian_sampling_error, sampling_error)

__all__ = ["FitConfig", "gaussian_kl", "gaussian_sampling_error", "sampling_error"]
