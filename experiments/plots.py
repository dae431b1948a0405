"""Plots the binaries write (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position


def learning_curve(records: list[dict], path: str, title: str) -> None:
  """Evaluation return vs env steps: each seed thin, the mean bold, ±1 std shaded.

  records: metrics.jsonl rows with `env_steps`, `seed`, `eval_return`.
  """
  seeds = sorted({r["seed"] for r in records})
  steps = sorted({r["env_steps"] for r in records})
  table = np.full((len(seeds), len(steps)), np.nan)
  for r in records:
    table[seeds.index(r["seed"]), steps.index(r["env_steps"])] = r["eval_return"]
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for row in table:
    ax.plot(steps, row, color="tab:blue", alpha=0.25, lw=0.8)
  mean, std = np.nanmean(table, 0), np.nanstd(table, 0)
  ax.plot(steps, mean, color="tab:blue", lw=2, label=f"mean of {len(seeds)} seeds")
  ax.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2, label="±1 std")
  ax.set_xlabel("env steps (per seed)")
  ax.set_ylabel("evaluation return (deterministic policy)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def sensitivity(values, iqm, lo, hi, field: str, path: str, title: str) -> None:
  """Final return (IQM with its 95% CI) against a swept field's values (strings): numbers
  on a numeric axis, log when positive and spanning a factor of 10 or more; other values
  (switches, sizes like (64, 64)) as categories."""
  fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
  iqm, lo, hi = map(np.asarray, (iqm, lo, hi))
  try:
    x = np.asarray([float(v) for v in values])
  except ValueError:
    x = None
  if x is None:
    ax.errorbar(np.arange(len(values)), iqm, yerr=[iqm - lo, hi - iqm], fmt="o", capsize=3)
    ax.set_xticks(np.arange(len(values)), [str(v) for v in values])
  else:
    ax.errorbar(x, iqm, yerr=[iqm - lo, hi - iqm], fmt="o-", capsize=3)
    if x.min() > 0 and x.max() >= 10 * x.min():
      ax.set_xscale("log")
  ax.set_xlabel(field)
  ax.set_ylabel("final return (IQM, 95% CI)")
  ax.set_title(title, fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
