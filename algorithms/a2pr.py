"""A2PR (Liu, Zhang, Yan, Jiang, Zhao & Yu 2024, "Adaptive Advantage-Guided Policy
Regularization for Offline Reinforcement Learning").

TD3+BC's structure with a state value V, a VAE trained on the dataset's advantageous
actions, and a regulariser that pulls π toward whichever of the dataset action and the
VAE's action has the higher advantage. Per gradient step, in the order of the authors'
code (A2PR.py, `train`):

  1. critics: TD3's (twin, target smoothing ã ~ π'(s') + clip(ε)), y_t = r + γ(1−d) min_i Q'_i(s', ã).
  2. value (paper eq. 7): y_o = r + γ(1−d) min_i Q_i(s', ã) with the critics just updated,
       L_V = E[(V(s) − min(y_t, y_o))²].
  3. VAE (eq. 8), on advantageous data only: with V(s) from before step 2,
       L_VAE = E[w·1(Q1(s, a) > V(s)) (D(s, z) − a)²] + ½ E[KL(N(μ, σ²) ‖ N(0, 1))],
       z = μ + σ ε from the encoder E(s, a), log σ clipped to [−4, 15], w = `vae_weight`.
  4. every `policy_delay` steps, actor (eqs. 9–11): â = D(E(s, π(s))) (sampled, and
     differentiated through, as in the code), A(s, x) = Q1(s, x) − V(s),
       target = â if A(s, â) ≥ A(s, a) else a,
       m = ε_A · 1(Q1(s, â) ≥ V(s) or Q1(s, a) > V(s)),   ε_A = `mask`,
       L_π = −λ E[Q1(s, π(s))] + E[m (π(s) − target)²],  λ = α / mean |Q1(s, π(s))|,
     then the critics' and the actor's targets move by τ (V has no target).

Networks are the code's: actor 256-256-256, critics and V 256×4, VAE 750-750 with a
latent of 2·action_size; Adam 3e-4 (VAE 1e-3, torch's default); states z-scored with the
dataset's mean and std + 1e-3. Defaults are the code's argparse ones (α = 2.5,
`vae_weight` = 1, `mask` = 0.5, γ = 0.99); its README runs HalfCheetah with α = 40,
mask 1; Hopper with mask 0.4, γ = 0.995; Walker2d with `vae_weight` 1.5, mask 1.
Initialisation is flax's (LeCun), not PyTorch's default uniform.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from algorithms import td3
from algorithms.common import offline, policies
from algorithms.common.agent import Agent
from algorithms.common.networks import MLP, QNet, ValueNet, polyak
from algorithms.td3_bc import TD3BCConfig
from envs import Env

LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0


@dataclasses.dataclass(frozen=True)
class A2PRConfig(TD3BCConfig):
  """A2PR hyperparameters (the authors' code's defaults); `hidden` is the actor's."""

  hidden: Sequence[int] = (256, 256, 256)
  critic_hidden: Sequence[int] = (256, 256, 256, 256)
  vae_hidden: Sequence[int] = (750, 750)
  value_learning_rate: float = 3e-4
  vae_learning_rate: float = 1e-3
  vae_weight: float = 1.0
  mask: float = 0.5

  def validate(self) -> None:
    super().validate()
    if self.mask < 0 or self.vae_weight < 0:
      raise ValueError(f"mask and vae_weight must be >= 0, got {self.mask}, {self.vae_weight}")


class VAE(nn.Module):
  """Conditional VAE over actions: (obs [B, d], action [B, a], key) -> (D(s, z) [B, a],
  μ [B, k], σ [B, k]) with z = μ + σ ε; `decode(obs, z)` -> tanh action [B, a]."""

  hidden: Sequence[int]
  action_size: int
  latent_size: int

  def setup(self):
    self.encoder = [nn.Dense(h) for h in self.hidden]
    self.mu = nn.Dense(self.latent_size)
    self.log_sigma = nn.Dense(self.latent_size)
    self.decoder = [nn.Dense(h) for h in self.hidden]
    self.out = nn.Dense(self.action_size)

  def __call__(self, obs, action, key):
    x = jnp.concatenate([obs, action], -1)
    for layer in self.encoder:
      x = nn.relu(layer(x))
    mu = self.mu(x)
    sigma = jnp.exp(jnp.clip(self.log_sigma(x), LOG_STD_MIN, LOG_STD_MAX))
    z = mu + sigma * jax.random.normal(key, mu.shape)
    return self.decode(obs, z), mu, sigma

  def decode(self, obs, z):
    x = jnp.concatenate([obs, z], -1)
    for layer in self.decoder:
      x = nn.relu(layer(x))
    return jnp.tanh(self.out(x))


def networks(config: A2PRConfig, env: Env):
  """(actor, twin Q, V, VAE)."""
  return (MLP(tuple(config.hidden), env.action_size, config.activation),
          QNet(tuple(config.critic_hidden), 2, config.activation),
          ValueNet(tuple(config.critic_hidden), config.activation),
          VAE(tuple(config.vae_hidden), env.action_size, 2 * env.action_size))


def value_loss(v_params, batch, target_y, online_y, v_net):
  """E[(V(s) − min(y_t, y_o))²] over batch [B]."""
  v = v_net.apply(v_params, batch["obs"])
  loss = jnp.mean((v - jnp.minimum(target_y, online_y)) ** 2)
  return loss, {"value_loss": loss, "v_mean": v.mean()}


def vae_loss(vae_params, batch, q1, v_old, key, vae_net, vae_weight):
  """E[w 1(Q1(s,a) > V(s)) (D(s,z) − a)²] + ½ E[KL]; q1, v_old [B] -> (loss, aux)."""
  recon, mu, sigma = vae_net.apply(vae_params, batch["obs"], batch["action"], key)
  weight = vae_weight * (q1 > v_old).astype(recon.dtype)
  recon_loss = jnp.mean(weight[:, None] * (recon - batch["action"]) ** 2)
  kl = -0.5 * jnp.mean(1.0 + jnp.log(sigma ** 2) - mu ** 2 - sigma ** 2)
  return recon_loss + 0.5 * kl, {"vae_recon_loss": recon_loss, "vae_kl": kl,
                                 "advantageous_fraction": jnp.mean(q1 > v_old)}


def actor_loss(actor_params, q_params, vae_params, batch, v_old, key, nets, alpha, mask):
  """L_π of step 4 over batch [B, ...] (v_old [B]: V(s) before this step's value update)."""
  actor_net, q_net, _, vae_net = nets
  pi = jnp.tanh(actor_net.apply(actor_params, batch["obs"]))
  q_pi = q_net.apply(q_params, batch["obs"], pi)[..., 0]
  lam = alpha / jax.lax.stop_gradient(jnp.abs(q_pi).mean())
  recon_pi, _, _ = vae_net.apply(vae_params, batch["obs"], pi, key)   # not detached
  q_data = q_net.apply(q_params, batch["obs"], batch["action"])[..., 0]
  q_recon = q_net.apply(q_params, batch["obs"], recon_pi)[..., 0]
  use_recon = (q_recon - v_old) >= (q_data - v_old)
  target = jnp.where(use_recon[:, None], recon_pi, batch["action"])
  m = mask * jax.lax.stop_gradient(((q_recon >= v_old) | (q_data > v_old)).astype(pi.dtype))
  bc = jnp.mean(m[:, None] * (pi - target) ** 2)
  return -lam * q_pi.mean() + bc, {"bc_loss": bc, "lambda": lam,
                                   "vae_target_fraction": use_recon.mean()}


def make_learner(config: A2PRConfig, env: Env) -> offline.Learner:
  """A2PR's networks, optimisers and one gradient step (steps 1–4 above)."""
  nets = networks(config, env)
  actor_net, q_net, v_net, vae_net = nets
  opts = {"actor": optax.adam(config.actor_learning_rate),
          "q": optax.adam(config.critic_learning_rate),
          "v": optax.adam(config.value_learning_rate), "vae": optax.adam(config.vae_learning_rate)}

  def init(key):
    k_pi, k_q, k_v, k_vae, k_z = jax.random.split(key, 5)
    obs, act = jnp.zeros((1, env.observation_size)), jnp.zeros((1, env.action_size))
    params = {"actor": actor_net.init(k_pi, obs), "q": q_net.init(k_q, obs, act),
              "v": v_net.init(k_v, obs), "vae": vae_net.init(k_vae, obs, act, k_z)}
    return {**params, "target_actor": params["actor"], "target_q": params["q"],
            "opt": {k: opts[k].init(params[k]) for k in opts}, "step": jnp.zeros((), jnp.int32)}

  def gradient_step(name, ls, loss_fn, *args):
    grads, aux = jax.grad(loss_fn, has_aux=True)(ls[name], *args)
    upd, opt = opts[name].update(grads, ls["opt"][name])
    return optax.apply_updates(ls[name], upd), opt, aux

  def update(ls, batch, key):
    k_noise, k_vae, k_pi = jax.random.split(key, 3)
    q, opt_q, aux_q = gradient_step("q", ls, td3.critic_loss, ls["target_q"], ls["target_actor"],
                                    batch, k_noise, config, actor_net, q_net)
    # the critic's target action again (same key, same noise), for the value's targets
    next_action = td3.smoothed_target_action(ls["target_actor"], batch["next_obs"], k_noise,
                                             config, actor_net)
    bootstrap = lambda p: (batch["reward"] + config.discount * batch["discount"]
                           * q_net.apply(p, batch["next_obs"], next_action).min(-1))
    v_old = v_net.apply(ls["v"], batch["obs"])
    v, opt_v, aux_v = gradient_step("v", ls, value_loss, batch, bootstrap(ls["target_q"]),
                                    bootstrap(q), v_net)
    q1 = q_net.apply(q, batch["obs"], batch["action"])[..., 0]
    vae, opt_vae, aux_vae = gradient_step("vae", ls, vae_loss, batch, q1, v_old, k_vae, vae_net,
                                          config.vae_weight)
    step = ls["step"] + 1

    def delayed(_):
      (loss, aux), grads = jax.value_and_grad(actor_loss, has_aux=True)(
          ls["actor"], q, vae, batch, v_old, k_pi, nets, config.alpha, config.mask)
      upd, opt_pi = opts["actor"].update(grads, ls["opt"]["actor"])
      actor = optax.apply_updates(ls["actor"], upd)
      return (actor, opt_pi, polyak(ls["target_actor"], actor, config.tau),
              polyak(ls["target_q"], q, config.tau), {"actor_loss": loss, **aux})

    def skip(_):
      aux = jax.eval_shape(delayed, None)[4]
      return (ls["actor"], ls["opt"]["actor"], ls["target_actor"], ls["target_q"],
              jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), aux))

    actor, opt_pi, target_actor, target_q, aux_pi = jax.lax.cond(
        td3.actor_turn(step, batch, config.policy_delay), delayed, skip, None)
    new = {"actor": actor, "q": q, "v": v, "vae": vae, "target_actor": target_actor,
           "target_q": target_q, "step": step,
           "opt": {"actor": opt_pi, "q": opt_q, "v": opt_v, "vae": opt_vae}}
    return new, {**aux_q, **aux_v, **aux_vae, **aux_pi}

  make_policy, log_prob = policies.deterministic_fns(actor_net, config.exploration_noise)
  return offline.Learner(init=init, update=update, policy=lambda ls: ls["actor"],
                         make_policy=make_policy, log_prob=log_prob)


def make_agent(config: A2PRConfig, env: Env, data: dict) -> Agent:
  """A2PR on logged-data arrays `data` [N, T, ...] (`env` gives sizes)."""
  config.validate()
  return offline.make_agent(make_learner(config, env), data, config)
