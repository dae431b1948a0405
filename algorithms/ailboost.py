"""AILBoost: adversarial imitation learning via boosting (Chang, Sreenivas, Huang, Brantley &
Sun, ICLR 2024).

The output policy is a mixture (ensemble) of weak learners, grown by functional gradient
boosting on the reverse KL between the ensemble's and the expert's state-action
distributions. One `update` is one boosting round k:

  1. train the current weak learner (SAC, warm-started from the previous one) for
     `learner_steps` env steps on the reward of the current discriminator g;
  2. add it to the ensemble and collect its samples as the authors' `collect_samples`
     does: `sample_episodes` whole episodes from freshly reset envs with the learner's
     stochastic policy (`collect_samples`), of which `num_samples` transitions, drawn
     uniformly without replacement, go into its own slot of the weighted buffer. Every
     phase of the episode is covered (the training envs run in lock-step, so sampling
     them would only ever see a few windows of the episode);
  3. reweight: with step size η, the ensemble becomes (1 − η)·old + η·new, so after K
     learners learner 0 has weight (1 − η)^(K−1) and learner j ≥ 1 has η (1 − η)^(K−1−j)
     (`boosting_weights`); a learner's samples share its weight;
  4. train the discriminator for `disc_steps` steps on weighted-buffer samples (a learner
     drawn with its weight, then a uniform sample of its slot) against expert samples:

       L(g) = mean_E[exp(−g(x_E))] + mean_π[g(x_π)] + λ_GP · mean[(‖∇_x̂ g(x̂)‖ − 1)²]

     whose minimiser is g* = log(d_E / d_π), the variational form of the reverse KL
     (the code's `rkl` divergence), g bounded by a final tanh, gradient penalty on expert /
     policy interpolates as in DAC. `disc_loss="js"` trains it with DAC's binary
     cross-entropy instead (`dac.discriminator_loss`; reward = the logit), so that with
     DAC's network (`AILBoostDACDiscConfig`) boosting can be compared with DAC at equal
     discriminator strength;
  5. `reload_buffer` (default, the code's `load_buffer`): SAC's replay is replaced by the
     weighted buffer's samples of every learner so far, sampled uniformly (the boosting
     weights only apply to the discriminator); the next round's own transitions are
     appended to it and dropped at the next reload. With `reload_buffer=False` SAC's
     replay instead keeps everything collected (prefill, training, learner samples).

SAC's reward is g(s, a), recomputed with the current discriminator on every minibatch.
Round 0 happens in `init`: after `learning_starts` uniform random steps, learner 0 is the
untrained initial actor. The ensemble's policy (`mixture_policy`) draws one member per
episode with probability equal to its weight and acts with that member's mean action;
the runner's periodic evaluation uses the newest learner (`make_policy`); the ensemble's
members and weights are in `policy_params`, for `mixture_policy`.

Rounds and η (`boosting_eta`): the code's η = 0.05 assumes thousands of rounds (1e7
agent steps of 2000-step rounds, ~5000 rounds). After R rounds learner 0 still weighs (1 − η)^R, 0.46 at
R = 15. The rule here: η = max(0.05, 1 − 0.05^(1/R)) for the R rounds that fit the
budget, so learner 0 ends at ≤ 5% of the ensemble (and of the discriminator's policy
samples) whatever the budget, and runs of ≥ 59 rounds keep the code's 0.05. An
explicit `eta` > 0 overrides the rule. A run should still have many rounds: the
reproduction uses 1000 learner steps plus one 1000-step sample episode per round, 50
rounds in 100k steps (the code: 1000 + 1000 agent steps per round).

Defaults are the authors' code for DM Control (`Cornell-RL/ailboost`): 1000 learner
steps and 1000 samples (two whole 500-step episodes at their action repeat 2; one
1000-step episode here, which has no action repeat) per round, 100 discriminator steps of
512 + 512 samples, discriminator 64-64 ReLU with tanh output, Adam 1e-4 everywhere,
λ_GP = 10, SAC 1024-1024 with batch 1024, one SAC step per 2 env steps, 5000 random
steps. Differences from the code: the ensemble's weights are mapped to learners as
intended (the code's `np.unique` sorts and merges them), and its members are copies (the
code stores `state_dict()` references that alias the live actor, so its "ensemble"
evaluation acts with the newest learner); SAC's own transitions enter the replay as they
are collected (the code adds whole episodes at their end, so half of a round's are
overwritten before use); our SAC's std is softplus + 1e-3 (the code's tanh-bounded log
σ ∈ [−5, 2]) and layers use LeCun-uniform rather than orthogonal initialisation.

Memory: the ensemble is a fixed array of `max_learners` = 1 + ⌈total_steps / round⌉
actors, all kept as the paper does; with 1024-1024 actors that is ~4 MB per learner per
seed (a 1M-step run: ~500 learners, ~2 GB per seed, in the state and its checkpoints).
Smaller `hidden` or longer `learner_steps` keep long runs affordable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from algorithms import dac, sac
from algorithms.common import offpolicy, replay
from algorithms.common.agent import Agent
from algorithms.common.rollout import rollout
from envs import Env, batch_reset

@dataclasses.dataclass(frozen=True)
class AILBoostConfig(sac.AILBoostSACConfig):
  """AILBoost settings (authors' code defaults; see module doc) over SAC's as the authors
  configure it."""

  demos: str = ""
  total_steps: int = 0
  learner_steps: int = 1000
  num_samples: int = 1000
  sample_episodes: int = 1
  eta: float = 0.0                  # 0: the budget rule (module doc)
  reload_buffer: bool = True
  disc_steps: int = 100
  disc_batch_size: int = 512
  disc_loss: str = "rkl"
  disc_hidden: Sequence[int] = (64, 64)
  disc_activation: str = "relu"
  disc_output_tanh: bool = True
  disc_learning_rate: float = 1e-4
  gradient_penalty: float = 10.0

  def round_steps(self, episode_length: int) -> int:
    """Env steps of one boosting round: training the learner, then its sample episodes."""
    return self.learner_steps + self.sample_episodes * episode_length

  def max_learners(self, episode_length: int) -> int:
    """Ensemble capacity: learner 0 plus one per round of the run."""
    return 1 + -(-max(self.total_steps, 1) // self.round_steps(episode_length))

  def boosting_eta(self, episode_length: int) -> float:
    """η: `eta` if > 0, else max(0.05, 1 − 0.05^(1/R)) for the run's R rounds."""
    if self.eta > 0:
      return self.eta
    rounds = self.max_learners(episode_length) - 1
    return float(max(0.05, 1.0 - 0.05 ** (1.0 / max(rounds, 1))))

  def validate(self) -> None:
    super().validate()
    if not self.demos:
      raise ValueError("AILBoost needs expert demonstrations: --demos=PATH")
    if not 0 <= self.eta < 1:
      raise ValueError(f"eta must be in [0, 1) (0: set from the budget), got {self.eta}")
    if self.disc_loss not in ("rkl", "js"):
      raise ValueError(f"disc_loss must be 'rkl' or 'js', got {self.disc_loss!r}")
    seg = self.num_envs * self.unroll_length
    if self.learner_steps <= 0 or self.learner_steps % seg:
      raise ValueError(f"learner_steps={self.learner_steps} must be a positive multiple of "
                       f"num_envs * unroll_length = {seg}")
    if self.num_samples <= 0 or self.sample_episodes <= 0:
      raise ValueError("num_samples and sample_episodes must be positive")
    if self.normalize_observations:
      raise ValueError("AILBoost compares raw observations: normalize_observations must be False")


@dataclasses.dataclass(frozen=True)
class AILBoostDACDiscConfig(AILBoostConfig):
  """AILBoost with the discriminator of our DAC (Kostrikov's: 256-256 tanh, no output
  tanh, Adam 1e-3, binary cross-entropy), so that boosting is compared with DAC at equal
  discriminator strength."""

  disc_loss: str = "js"
  disc_hidden: Sequence[int] = (256, 256)
  disc_activation: str = "tanh"
  disc_output_tanh: bool = False
  disc_learning_rate: float = 1e-3


def boosting_weights(num_learners: jax.Array, max_learners: int, eta: float) -> jax.Array:
  """Mixture weights [max_learners] of an ensemble of `num_learners` (zeros past it).

  K = 1: [1]; K ≥ 2: learner 0 (1 − η)^(K−1), learner j ≥ 1 η (1 − η)^(K−1−j). Sums to 1.
  """
  j = jnp.arange(max_learners)
  k = num_learners
  w = jnp.where(j == 0, (1 - eta) ** (k - 1), eta * (1 - eta) ** (k - 1 - j))
  return jnp.where(j < k, w, 0.0)


def sample_weighted(key: jax.Array, weights: jax.Array, num_samples: int,
                    batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Indices (learner [B], sample [B]) into the weighted buffer's slots: a learner drawn
  with its weight, then one of its `num_samples` uniformly, so that transition i of
  learner j has probability weights[j] / num_samples."""
  k_l, k_i = jax.random.split(key)
  who = jax.random.categorical(k_l, jnp.log(weights), shape=(batch_size,))
  return who, jax.random.randint(k_i, (batch_size,), 0, num_samples)


def collect_samples(env: Env, act, key: jax.Array, episodes: int,
                    num_samples: int) -> tuple[dict, jax.Array]:
  """A learner's samples: `episodes` envs freshly reset, run for env.episode_length steps
  each with act(obs [E, d], key) -> (action [E, a], extras), and `num_samples` of the
  E · episode_length transitions drawn uniformly without replacement.

  Returns (replay items {obs, action, reward, discount, next_obs} [num_samples, ...],
  step of each sample within its episode [num_samples], 0 = the first step).
  """
  if num_samples > episodes * env.episode_length:
    raise ValueError(f"num_samples={num_samples} exceeds the {episodes} sample episodes' "
                     f"{episodes * env.episode_length} transitions")
  k_reset, k_roll, k_pick = jax.random.split(key, 3)
  _, tr = rollout(env, batch_reset(env, k_reset, episodes), act, k_roll, env.episode_length)
  done = tr.terminated | tr.truncated                       # [T, E]

  def count(prev, d):
    return jnp.where(d, 0, prev + 1), prev

  _, steps = jax.lax.scan(count, jnp.zeros(done.shape[1], jnp.int32), done)
  pick = jax.random.permutation(k_pick, done.size)[:num_samples]
  items = jax.tree.map(lambda x: x[pick], replay.items(tr))
  return items, steps.reshape(-1)[pick]


def discriminator_loss(disc_params, disc_net, x_expert, x_policy, key, gradient_penalty: float):
  """The reverse-KL discriminator loss on x_expert, x_policy [B, D] -> (L, aux)."""
  g = lambda x: disc_net.apply(disc_params, x)[..., 0]
  g_e, g_p = g(x_expert), g(x_policy)
  gp = dac.grad_penalty(disc_params, disc_net, x_expert, x_policy, key)
  div = jnp.mean(jnp.exp(-g_e)) + jnp.mean(g_p)
  return div + gradient_penalty * gp, {"disc_loss": div, "gradient_penalty": gp,
                                       "g_expert": g_e.mean(), "g_policy": g_p.mean()}


@struct.dataclass
class AILBoostState:
  """The SAC loop's state (its learner holds the discriminator), the ensemble's actors
  [max_learners, ...] and count, the weighted buffer's slots (replay items [max_learners,
  num_samples, ...]), the discriminator's optimiser state, the key."""

  inner: offpolicy.OffPolicyState
  ensemble: Any
  num_learners: jax.Array
  slots: dict
  disc_opt: Any
  key: jax.Array


def mixture_policy(policy_net, params: dict, key: jax.Array):
  """The ensemble as a policy for a batch of episodes: each row of the batch (episode)
  acts throughout with one member drawn with its weight from `key` -> policy(obs [E, d],
  step key) -> action [E, a] (members' mean actions)."""

  def policy(obs, _):
    members = jax.random.categorical(key, jnp.log(params["weights"]), shape=obs.shape[:1])
    actor = jax.tree.map(lambda x: x[members], params["ensemble"])
    raw = jax.vmap(lambda p, o: policy_net.apply(p, o))(actor, obs)
    return jnp.tanh(jnp.split(raw, 2, axis=-1)[0])

  return policy


def reload(buf, slots: dict, count: jax.Array):
  """The replay buffer holding exactly the first `count` learner-sample items of `slots`
  (flattened learner-major), sampled uniformly (flashbax samples [0, current_index))."""
  flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), slots)
  experience = jax.tree.map(lambda e, f: e.at[0, :f.shape[0]].set(f), buf.experience, flat)
  return type(buf)(experience=experience, current_index=count.astype(buf.current_index.dtype),
                   is_full=jnp.zeros_like(buf.is_full))


def make_agent(config: AILBoostConfig, env: Env, demos) -> Agent:
  """AILBoost as an `Agent`: one `update` per boosting round (config.total_steps > 0),
  imitating `demos` (arrays, see `dac.expert_transitions`)."""
  config.validate()
  if config.total_steps <= 0:
    raise ValueError("AILBoostConfig.total_steps must be set (> 0): it sizes the ensemble")
  length = env.episode_length
  if config.num_samples > config.sample_episodes * length:
    raise ValueError(f"num_samples={config.num_samples} exceeds sample_episodes * "
                     f"episode_length = {config.sample_episodes * length}")
  k_max = config.max_learners(length)
  eta = config.boosting_eta(length)
  if config.reload_buffer and config.buffer_size < k_max * config.num_samples + config.learner_steps:
    raise ValueError(f"reload_buffer needs buffer_size >= max_learners * num_samples + "
                     f"learner_steps = {k_max * config.num_samples + config.learner_steps}")
  # Inputs x = [s, a], no absorbing states (the authors' code), so the gradient penalty
  # is over (s, a) only.
  expert = dac.expert_transitions(demos, 1, absorbing=False)
  width = env.observation_size + env.action_size
  if expert["x"].shape[-1] != width:
    raise ValueError(f"demos do not match {env.name}: transitions of width "
                     f"{expert['x'].shape[-1]} vs obs + action {width}")
  x_expert = jnp.asarray(expert["x"])
  x_abs = jnp.zeros(width)                          # unused: its weight is always 0
  policy_net = sac.networks(config, env.action_size)[0]
  disc_net = dac.discriminator(config)
  disc_opt = optax.adam(config.disc_learning_rate)
  base = sac.make_learner(config, env)
  seg = config.num_envs * config.unroll_length

  def sac_update(lstate, batch, key):
    x = dac.disc_input(batch["obs"], batch["action"], None, indicator=False)
    r = jax.lax.stop_gradient(disc_net.apply(lstate["disc"], x)[..., 0])
    sac_state, metrics = base.update(lstate["sac"], {**batch, "reward": r}, key)
    return {**lstate, "sac": sac_state}, {**metrics, "disc_reward": r.mean()}

  def learner_init(key):
    k_sac, k_disc = jax.random.split(key)
    return {"sac": base.init(k_sac), "disc": disc_net.init(k_disc, jnp.zeros((1, width)))}

  learner = offpolicy.Learner(
      init=learner_init,
      explore=lambda s, o, k: base.explore(s["sac"], o, k), update=sac_update,
      policy=lambda s: base.policy(s["sac"]), make_policy=base.make_policy,
      log_prob=base.log_prob)
  inner = offpolicy.make_agent(config, env, learner)
  buffer = replay.make_buffer(config.buffer_size, config.batch_size)

  def disc_loss(params, x_e, x_p, key):
    if config.disc_loss == "rkl":
      return discriminator_loss(params, disc_net, x_e, x_p, key, config.gradient_penalty)
    b = x_p.shape[0]
    return dac.discriminator_loss(params, disc_net, x_e, jnp.ones(b), x_p, jnp.zeros(b), x_abs,
                                  key, config.gradient_penalty)

  def boost(state: AILBoostState):
    """Add the current actor, collect its samples, reweight, train the discriminator."""
    key, k_roll, k_disc = jax.random.split(state.key, 3)
    s = state.inner
    actor = base.policy(s.learner["sac"])
    k = state.num_learners
    ensemble = jax.tree.map(lambda e, a: e.at[k].set(a), state.ensemble, actor)

    def act(obs, kk):
      return base.explore(s.learner["sac"], obs, kk), {}

    items, steps = collect_samples(env, act, k_roll, config.sample_episodes, config.num_samples)
    slots = jax.tree.map(lambda sl, x: sl.at[k].set(x), state.slots, items)
    weights = boosting_weights(k + 1, k_max, eta)

    def disc_step(carry, kk):
      params, opt = carry
      k_p, k_e, k_gp = jax.random.split(kk, 3)
      b = config.disc_batch_size
      who, idx = sample_weighted(k_p, weights, config.num_samples, b)
      x_p = dac.disc_input(slots["obs"][who, idx], slots["action"][who, idx], None,
                           indicator=False)
      x_e = x_expert[jax.random.randint(k_e, (b,), 0, x_expert.shape[0])]
      grads, aux = jax.grad(disc_loss, has_aux=True)(params, x_e, x_p, k_gp)
      upd, opt = disc_opt.update(grads, opt)
      return (optax.apply_updates(params, upd), opt), aux

    (disc, d_opt), aux = jax.lax.scan(disc_step, (s.learner["disc"], state.disc_opt),
                                      jax.random.split(k_disc, config.disc_steps))
    if config.reload_buffer:
      buf = reload(s.buffer, slots, (k + 1) * config.num_samples)
    else:
      buf = buffer.add(s.buffer, items)
    inner_state = s.replace(learner={**s.learner, "disc": disc}, buffer=buf)
    metrics = {**jax.tree.map(lambda x: x[-1], aux), "num_learners": (k + 1).astype(jnp.float32),
               "newest_weight": weights[k],
               "sample_step_mean": steps.astype(jnp.float32).mean()}
    return AILBoostState(inner=inner_state, ensemble=ensemble, num_learners=k + 1, slots=slots,
                         disc_opt=d_opt, key=key), metrics

  def init(key):
    k_inner, key = jax.random.split(key)
    s = inner.init(k_inner)
    actor = base.policy(s.learner["sac"])
    item = replay.example_item(env.observation_size, env.action_size)
    state = AILBoostState(
        inner=s, ensemble=jax.tree.map(lambda a: jnp.zeros((k_max,) + a.shape, a.dtype), actor),
        num_learners=jnp.zeros((), jnp.int32),
        slots=jax.tree.map(lambda x: jnp.zeros((k_max, config.num_samples) + x.shape, x.dtype),
                           item),
        disc_opt=disc_opt.init(s.learner["disc"]), key=key)
    return boost(state)[0]

  def update(state: AILBoostState):
    s, sac_metrics = jax.lax.scan(lambda c, _: inner.update(c), state.inner, None,
                                  length=config.learner_steps // seg)
    state, boost_metrics = boost(state.replace(inner=s))
    return state, {**jax.tree.map(jnp.nanmean, sac_metrics), **boost_metrics}

  def policy_params(state: AILBoostState):
    return {**inner.policy_params(state.inner), "ensemble": state.ensemble,
            "weights": boosting_weights(state.num_learners, k_max, eta)}

  sample_steps = config.sample_episodes * length
  return Agent(init=init, update=update, policy_params=policy_params,
               make_policy=base.make_policy, log_prob=base.log_prob,
               steps_per_update=config.learner_steps + sample_steps,
               init_steps=inner.init_steps + sample_steps)
