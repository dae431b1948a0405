r"""Brax's own PPO (`brax.training.agents.ppo`) on the settings of our PPO, for comparison.

Runs in a separate virtualenv (Brax 0.14.2's trainers need jax <= 0.8; see
BENCHMARKS.md), so it imports nothing from this repo. `benchmarks/ppo_throughput.py`
calls it with the same env, number of envs, unroll, minibatches, epochs and network
sizes as ours and prints one JSON line:

    python benchmarks/brax_ppo_reference.py --env=inverted_pendulum --num_envs=64 \
        --unroll_length=32 --num_minibatches=8 --num_epochs=4 --total_steps=262144
"""

import argparse
import functools
import json
import time

import jax
from brax import envs
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as ppo


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--env", default="inverted_pendulum")
  p.add_argument("--num_envs", type=int, default=64)
  p.add_argument("--unroll_length", type=int, default=32)
  p.add_argument("--num_minibatches", type=int, default=8)
  p.add_argument("--num_epochs", type=int, default=4)
  p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
  p.add_argument("--total_steps", type=int, default=262_144)
  p.add_argument("--episode_length", type=int, default=1000)
  args = p.parse_args()

  # Brax collects batch_size * num_minibatches trajectories of unroll_length per update;
  # with batch_size = num_envs / num_minibatches that is one unroll of all envs, as ours.
  assert args.num_envs % args.num_minibatches == 0
  sps, times = [], []

  def progress(step, metrics):
    times.append((step, time.time()))
    if "training/sps" in metrics:
      sps.append(float(metrics["training/sps"]))

  network = functools.partial(ppo_networks.make_ppo_networks,
                              policy_hidden_layer_sizes=tuple(args.hidden),
                              value_hidden_layer_sizes=tuple(args.hidden))
  t0 = time.time()
  ppo.train(environment=envs.get_environment(args.env), num_timesteps=args.total_steps,
            num_envs=args.num_envs, episode_length=args.episode_length,
            unroll_length=args.unroll_length, batch_size=args.num_envs // args.num_minibatches,
            num_minibatches=args.num_minibatches, num_updates_per_batch=args.num_epochs,
            learning_rate=1e-3, entropy_cost=1e-2, discounting=0.99, gae_lambda=0.95,
            clipping_epsilon=0.3, max_grad_norm=1.0, normalize_observations=True,
            bootstrap_on_timeout=True, network_factory=network, num_evals=3,
            num_eval_envs=8, deterministic_eval=True, seed=0, progress_fn=progress)
  print(json.dumps({"impl": "brax", "jax": jax.__version__, "env": args.env,
                    "steps_per_second": sps[-1], "sps_per_epoch": sps,
                    "wall_seconds": time.time() - t0}))


if __name__ == "__main__":
  main()
