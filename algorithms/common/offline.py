"""What offline agents share: a dataset's transitions, state normalisation, minibatches.

An offline agent learns from arrays only (`algorithms/` never reads files; `experiments/`
loads them). It receives the logged-data arrays of a dataset (obs, action, reward,
terminated, truncated [N, T, ...]; see evaluation/data.py) and turns them into
transitions with `transitions`:

- step t of trajectory i is a transition when it is a real step (not padding after the
  episode's end) and is not truncated: a truncated step (episode limit or horizon) has
  no stored next observation, so it is dropped, as D4RL's `qlearning_dataset` drops
  timeouts; a terminated step keeps discount 0 and needs none;
- next_obs[i, t] = obs[i, t + 1].

`make_agent` wraps a `Learner` (one gradient step on a minibatch) into the `Agent`
protocol: `Agent.data` holds the transitions, which the training loop passes to every
update as a jit argument (not a closure, which would embed the dataset in the compiled
program), shared by every vmapped seed. Each update takes `grad_steps` gradient steps on
minibatches drawn with replacement by the config's `sampler`:

- `uniform`: every transition alike (TD3+BC's and IQL's sampler);
- `return_weighted`: trajectory weighting, "RW" of Hong et al. 2023 ("Harnessing Mixed
  Offline RL Datasets via Trajectory Weighting", eq. 5 with the min-max normalised return
  of their code): transition t of trajectory i is drawn with probability
  ∝ exp(Ĝ_i / α), Ĝ_i = (G_i − min_j G_j) / (max_j G_j − min_j G_j), so a trajectory is
  drawn in proportion to its length times exp(Ĝ_i / α); α = `sampler_temperature`
  (their 0.1 for TD3+BC and IQL).

Observations are z-scored with the dataset's mean and std + `eps` (TD3+BC's
normalisation) when the config asks; the statistics are part of the policy params. An
algorithm that needs the whole dataset inside its update (PRDC's nearest-neighbour
search) gets arrays built once from the transitions (`context`), under
`batch['context']` of every minibatch. `batch['grad_step']` is the step's index within
the update, the same for every vmapped seed: a learner that acts every k-th step (TD3's
delayed actor) tests it rather than its own counter, which vmap batches, so that
`lax.cond` stays a branch instead of running both sides for all seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from algorithms.common.agent import Agent

SAMPLERS = ("uniform", "return_weighted")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
  """Settings every offline agent shares."""

  batch_size: int = 256
  discount: float = 0.99
  grad_steps: int = 1000          # gradient steps per `update` (one scanned block)
  normalize_observations: bool = True
  normalize_eps: float = 1e-3
  sampler: str = "uniform"        # or "return_weighted" (trajectory weighting, RW)
  sampler_temperature: float = 0.1
  dataset: str = ""               # logged-data path (read by experiments/, never here)

  def validate(self) -> None:
    """Raises ValueError on settings that cannot run."""
    for name in ("batch_size", "grad_steps"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{type(self).__name__}.{name} must be positive, got {getattr(self, name)}")
    if not 0.0 <= self.discount <= 1.0:
      raise ValueError(f"discount must be in [0, 1], got {self.discount}")
    if self.sampler not in SAMPLERS:
      raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
    if self.sampler_temperature <= 0:
      raise ValueError(f"sampler_temperature must be positive, got {self.sampler_temperature}")


def transitions(data: dict) -> dict:
  """Logged-data arrays [N, T, ...] -> transitions [M, ...] (numpy).

  Returns obs [M, d], action [M, a], reward [M], next_obs [M, d], discount [M] (1 − terminated),
  trajectory [M] (its row index) and returns [N] (each trajectory's undiscounted return).
  """
  obs, action = np.asarray(data["obs"], np.float32), np.asarray(data["action"], np.float32)
  reward = np.asarray(data["reward"], np.float32)
  terminated, truncated = np.asarray(data["terminated"], bool), np.asarray(data["truncated"], bool)
  done = terminated | truncated
  # valid: no end of episode strictly before t
  valid = np.concatenate([np.ones_like(done[:, :1]), np.cumsum(done, axis=1)[:, :-1] == 0], axis=1)
  usable = valid & ~truncated
  next_obs = np.concatenate([obs[:, 1:], obs[:, -1:]], axis=1)
  rows = np.broadcast_to(np.arange(obs.shape[0])[:, None], done.shape)
  return {"obs": obs[usable], "action": action[usable], "reward": reward[usable],
          "next_obs": next_obs[usable], "discount": 1.0 - terminated[usable].astype(np.float32),
          "trajectory": rows[usable].astype(np.int32),
          "returns": (reward * valid).sum(axis=1)}


def return_weighted_logits(tr: dict, temperature: float) -> np.ndarray:
  """Trajectory weighting's (RW) log-weights up to a constant, [N]: Ĝ_i / α of each
  trajectory i (`transitions` output; min and max over the trajectories that have a
  usable transition; equal returns: uniform)."""
  g = np.asarray(tr["returns"], np.float64)
  used = g[np.unique(tr["trajectory"])]   # trajectories with a usable transition
  spread = used.max() - used.min()
  g_hat = (g - used.min()) / spread if spread > 0 else np.zeros_like(g)
  return g_hat / temperature


@struct.dataclass
class Normalizer:
  """Fixed observation normalisation: (obs − mean) / scale, unclipped (mean, scale [d])."""

  mean: jax.Array
  scale: jax.Array

  @classmethod
  def identity(cls, size: int) -> "Normalizer":
    return cls(jnp.zeros(size), jnp.ones(size))

  @classmethod
  def of(cls, obs: np.ndarray, eps: float) -> "Normalizer":
    """TD3+BC's (utils.py): mean and population std + eps of `obs` [M, d]."""
    return cls(jnp.asarray(obs.mean(0)), jnp.asarray(obs.std(0) + eps))

  def normalize(self, x: jax.Array) -> jax.Array:
    """x [..., d] -> (x − mean) / scale."""
    return (x - self.mean) / self.scale


def trajectory_sampler(tr: dict, logits: np.ndarray) -> dict:
  """What `sample` needs to draw transitions with per-trajectory log-weights `logits` [N]
  (unnormalised; every transition of trajectory i weighs exp(logits[i])): the cumulative
  distribution over trajectories with transitions, cdf [N'] (last = 1), each one's first
  transition index start [N'] and count [N'] in `tr` (`transitions` output, whose
  transitions are grouped by trajectory in order)."""
  rows, starts, counts = np.unique(tr["trajectory"], return_index=True, return_counts=True)
  logits = np.asarray(logits, np.float64)[rows]
  p = counts * np.exp(logits - logits.max())
  return {"cdf": np.cumsum(p / p.sum()), "start": starts.astype(np.int32),
          "count": counts.astype(np.int32)}


def sample(data: dict, key: jax.Array, batch_size: int) -> dict:
  """A minibatch [batch_size, ...] of transitions `data` [M, ...], drawn with replacement:
  uniformly, or, when `data['sampler']` (from `trajectory_sampler`) is present, a
  trajectory by its cumulative distribution and then one of its transitions uniformly,
  O(B log N) (a Gumbel draw per transition would cost O(B·M))."""
  if "sampler" in data:
    s = data["sampler"]
    k_traj, k_step = jax.random.split(key)
    u = jax.random.uniform(k_traj, (batch_size,), s["cdf"].dtype) * s["cdf"][-1]
    i = jnp.minimum(jnp.searchsorted(s["cdf"], u, side="right"), s["cdf"].shape[0] - 1)
    idx = s["start"][i] + jax.random.randint(k_step, (batch_size,), 0, s["count"][i])
  else:
    idx = jax.random.randint(key, (batch_size,), 0, data["obs"].shape[0])
  return {k: v[idx] for k, v in data.items() if k not in ("sampler", "context")}


@dataclasses.dataclass(frozen=True)
class Learner:
  """What an offline algorithm supplies.

  init: key -> learner state.
  update: (learner state, minibatch of transitions with normalised obs, key) ->
    (learner state, metrics dict of scalars); one gradient step.
  policy: learner state -> the policy network's params.
  make_policy, log_prob: over {'policy', 'obs_stats'} (see `algorithms.common.policies`).
  """

  init: Callable[[jax.Array], Any]
  update: Callable[[Any, dict, jax.Array], tuple[Any, dict]]
  policy: Callable[[Any], Any]
  make_policy: Callable
  log_prob: Optional[Callable]


@struct.dataclass
class OfflineState:
  """Learner state, the dataset's observation statistics, key, update counter."""

  learner: Any
  obs_stats: "Normalizer"
  key: jax.Array
  update_step: jax.Array


def make_agent(learner: Learner, data: dict, config: OfflineConfig,
               context: Optional[Callable[[dict, Normalizer], dict]] = None) -> Agent:
  """The offline loop around `learner` (an `offline.Learner`, or any object with its
  fields, e.g. an off-policy learner) as an `Agent` whose `update(state, data)` takes
  `config.grad_steps` gradient steps; `data`: logged-data arrays [N, T, ...];
  `context(transitions, normalizer) -> dict of arrays`: what the learner needs of the
  whole dataset (see the module doc). steps_per_update counts gradient steps (an offline
  run's "env steps" are its gradient steps)."""
  tr = transitions(data)
  if len(tr["obs"]) < 1:
    raise ValueError("the dataset holds no usable transition")
  stats = (Normalizer.of(tr["obs"], config.normalize_eps) if config.normalize_observations
           else Normalizer.identity(tr["obs"].shape[-1]))
  arrays = {k: jnp.asarray(tr[k]) for k in ("obs", "action", "reward", "next_obs", "discount")}
  if config.sampler == "return_weighted":
    sampler = trajectory_sampler(tr, return_weighted_logits(tr, config.sampler_temperature))
    arrays["sampler"] = {"cdf": jnp.asarray(sampler["cdf"], jnp.float32),
                         "start": jnp.asarray(sampler["start"]),
                         "count": jnp.asarray(sampler["count"])}
  if context is not None:
    arrays["context"] = jax.tree.map(jnp.asarray, context(tr, stats))
  batch_size, grad_steps = config.batch_size, config.grad_steps

  def normalize(batch, d):
    batch = {**batch, "obs": stats.normalize(batch["obs"]),
             "next_obs": stats.normalize(batch["next_obs"])}
    return {**batch, "context": d["context"]} if "context" in d else batch

  def init(key):
    k_learner, key = jax.random.split(key)
    return OfflineState(learner=learner.init(k_learner), obs_stats=stats, key=key,
                        update_step=jnp.zeros((), jnp.int32))

  def update(state: OfflineState, d: dict):
    key, k = jax.random.split(state.key)

    def step(lstate, xs):
      kk, j = xs
      k_sample, k_update = jax.random.split(kk)
      batch = {**normalize(sample(d, k_sample, batch_size), d), "grad_step": j}
      return learner.update(lstate, batch, k_update)

    lstate, metrics = jax.lax.scan(step, state.learner,
                                   (jax.random.split(k, grad_steps), jnp.arange(grad_steps)))
    metrics = jax.tree.map(jnp.nanmean, metrics)  # NaN: not computed this step (delayed actor)
    return state.replace(learner=lstate, key=key, update_step=state.update_step + 1), metrics

  def policy_params(state: OfflineState):
    return {"policy": learner.policy(state.learner), "obs_stats": state.obs_stats}

  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=learner.make_policy, log_prob=learner.log_prob,
               steps_per_update=grad_steps, data=arrays)
