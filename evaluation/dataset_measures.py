"""Dataset measures of Schweighofer et al. 2022 ("A Dataset Perspective on Offline
Reinforcement Learning"): trajectory quality (TQ) and state-action coverage (SACo).

- TQ (paper, sec. 3): the dataset's mean undiscounted episode return, normalised between
  a random and an expert policy's: (ḡ(D) − g_random) / (g_expert − g_random). 0 is random
  behaviour, 1 expert.
- SACo (sec. 3): the number of unique state-action pairs of D relative to a reference
  dataset's, u(D) / u(D_ref); the paper's reference is the replay dataset of an online
  agent's training (our `medium-replay`). Continuous states and actions are made discrete
  as the authors' D4RL notebook (d4rl_results/evaluate.ipynb) does: each dimension of
  [s, a] by `np.digitize` against `bins` = 5 equally spaced edges between the reference
  dataset's min and max of that dimension (values below the min land in cell 0, at or
  above the max in cell `bins`), over at most 100,000 transitions of each dataset (theirs:
  the first 100,000 of D4RL's files; ours: a seeded uniform subset, see `state_actions`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from evaluation.data import LoggedData, valid_mask

MAX_TRANSITIONS = 100_000


def episode_returns(data: LoggedData) -> np.ndarray:
  """[N] undiscounted return of each trajectory's valid steps."""
  mask = np.asarray(valid_mask(data.terminated, data.truncated))
  return (np.asarray(data.reward) * mask).sum(-1)


def trajectory_quality(data: LoggedData, random_return: float, expert_return: float) -> float:
  """TQ = (mean episode return − random_return) / (expert_return − random_return)."""
  if expert_return == random_return:
    raise ValueError("TQ needs different random and expert returns, got "
                     f"{random_return} for both")
  return float((episode_returns(data).mean() - random_return) / (expert_return - random_return))


def state_actions(data: LoggedData, max_transitions: int = MAX_TRANSITIONS,
                  seed: int = 0) -> np.ndarray:
  """[min(M, max_transitions), d + a] the [s, a] of the valid steps: all of them, or a
  uniformly random subset of `max_transitions` (seeded, in storage order) when there are
  more. The authors take D4RL's first 100,000; our medium-expert stores medium before
  expert, so a prefix would see one half only."""
  mask = np.asarray(valid_mask(data.terminated, data.truncated))
  pairs = np.concatenate([np.asarray(data.obs), np.asarray(data.action)], -1)[mask]
  if len(pairs) > max_transitions:
    keep = np.random.default_rng(seed).choice(len(pairs), max_transitions, replace=False)
    pairs = pairs[np.sort(keep)]
  return pairs


def coverage_limits(reference: LoggedData,
                    max_transitions: int = MAX_TRANSITIONS) -> tuple[np.ndarray, np.ndarray]:
  """(low [d + a], high [d + a]): per-dimension min and max of the reference's [s, a]."""
  pairs = state_actions(reference, max_transitions)
  return pairs.min(0), pairs.max(0)


def unique_state_actions(data: LoggedData, limits: tuple[np.ndarray, np.ndarray],
                         bins: int = 5, max_transitions: int = MAX_TRANSITIONS) -> int:
  """Number of distinct cells [s, a] falls in; each dimension cut at `bins` equally
  spaced edges from limits[0] to limits[1]."""
  pairs = state_actions(data, max_transitions)
  low, high = (np.asarray(x, np.float64) for x in limits)
  if low.shape != pairs.shape[-1:] or high.shape != low.shape:
    raise ValueError(f"limits must have shape [{pairs.shape[-1]}], got {low.shape}")
  cells = np.stack([np.digitize(pairs[:, i], np.linspace(low[i], high[i], bins))
                    for i in range(pairs.shape[-1])], -1)
  return int(len(np.unique(cells, axis=0)))


def saco(data: LoggedData, reference: LoggedData, bins: int = 5,
         max_transitions: int = MAX_TRANSITIONS,
         limits: Optional[tuple[np.ndarray, np.ndarray]] = None) -> float:
  """SACo = u(data) / u(reference), cells from the reference's limits (see the module)."""
  if limits is None:
    limits = coverage_limits(reference, max_transitions)
  return (unique_state_actions(data, limits, bins, max_transitions)
          / unique_state_actions(reference, limits, bins, max_transitions))
