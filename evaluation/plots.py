"""Plots of an OPE sweep (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position


def sharpe_ratio_vs_k(ks, sharpe: dict, path: str, title: str) -> None:
  """SharpeRatio@k against k, one line per estimator: sharpe {name: [S, len(ks)]}.

  Lines are the mean over datasets (NaN and inf entries left out), bands ±1 standard error.
  """
  fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
  for name, values in sharpe.items():
    v = np.where(np.isfinite(values), values, np.nan)
    mean = np.nanmean(v, axis=0)
    se = np.nanstd(v, axis=0) / np.sqrt(np.maximum(np.isfinite(v).sum(0), 1))
    ax.plot(ks, mean, marker="o", ms=3, label=name)
    ax.fill_between(ks, mean - se, mean + se, alpha=0.15)
  ax.set_xlabel("k (online evaluation budget)")
  ax.set_ylabel("SharpeRatio@k")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, ncol=2)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def estimated_vs_true(true_values, estimates: dict, behavior_value: float, path: str,
                      title: str) -> None:
  """One panel per estimator: estimate (mean ± std over datasets) against the true value."""
  names = list(estimates)
  cols = min(4, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=110, squeeze=False)
  lo = min(np.min(true_values), behavior_value)
  hi = max(np.max(true_values), behavior_value)
  for ax, name in zip(axes.ravel(), names):
    est = np.asarray(estimates[name])
    ax.errorbar(true_values, np.nanmean(est, 0), yerr=np.nanstd(est, 0), fmt="o", ms=3,
                capsize=2)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.axvline(behavior_value, color="tab:red", lw=0.8, alpha=0.6)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("true value", fontsize=8)
    ax.set_ylabel("estimate", fontsize=8)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(names):]:
    ax.axis("off")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def return_cdfs(thresholds, true_cdf, cdfs: dict, candidates: list, labels: list, path: str,
                title: str) -> None:
  """One panel per candidate: each CD estimator's CDF (first dataset) against the
  Monte-Carlo CDF. thresholds [K], true_cdf [P, K], cdfs {estimator: [P, K]}."""
  fig, axes = plt.subplots(1, len(candidates), figsize=(3.4 * len(candidates), 3.0), dpi=110,
                           squeeze=False)
  for ax, p, label in zip(axes[0], candidates, labels):
    ax.step(thresholds, true_cdf[p], where="post", color="k", lw=2, label="Monte-Carlo")
    for name, cdf in cdfs.items():
      ax.step(thresholds, np.asarray(cdf)[p], where="post", lw=1, label=name)
    ax.set_title(label, fontsize=9)
    ax.set_xlabel("return", fontsize=8)
    ax.set_ylabel("P(return <= x)", fontsize=8)
    ax.grid(alpha=0.3)
  axes[0, -1].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
