"""Shared by the dmc/ vs dm_control benchmarks: the parity verdict."""

import numpy as np

TOLERANCE_PCT, TOLERANCE_SE = 2.0, 2.0  # issue 13's target: within 2% or 2 SE


def compare(mean_a: float, se_a: float, mean_b: float, se_b: float) -> dict:
  """Gap of a against reference b: absolute, % of |b|, in SE of the difference, and the
  verdict 'match' when |gap| ≤ 2% or ≤ 2 SE, else 'DIFFERS'."""
  gap, se = mean_a - mean_b, float(np.hypot(se_a, se_b))
  pct = 100 * gap / abs(mean_b) if mean_b else float(np.copysign(np.inf, gap)) if gap else 0.0
  gap_se = abs(gap) / se if se > 0 else (0.0 if gap == 0 else float("inf"))
  ok = abs(pct) <= TOLERANCE_PCT or gap_se <= TOLERANCE_SE
  return {"gap": gap, "gap_pct": pct, "gap_se": gap_se, "verdict": "match" if ok else "DIFFERS"}
