r"""Brax's own trainers (`brax.training.agents.ppo` / `.sac`) on our settings, for comparison.

Runs in a separate virtualenv (Brax 0.14.2's trainers need jax <= 0.8; see
BENCHMARKS.md), so it imports nothing from this repo. `benchmarks/throughput.py` calls
it with the same env and batch settings as ours and reads one JSON line:

    python benchmarks/brax_reference.py --agent=ppo --env=inverted_pendulum --num_envs=64 \
        --unroll_length=32 --num_minibatches=8 --num_epochs=4 --total_steps=262144
    python benchmarks/brax_reference.py --agent=sac --env=inverted_pendulum --num_envs=16 \
        --grad_updates_per_step=16 --batch_size=256 --total_steps=20000
"""

import argparse
import functools
import json
import time

import jax
from brax import envs


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--agent", choices=["ppo", "sac"], default="ppo")
  p.add_argument("--env", default="inverted_pendulum")
  p.add_argument("--num_envs", type=int, default=64)
  p.add_argument("--unroll_length", type=int, default=32)
  p.add_argument("--num_minibatches", type=int, default=8)
  p.add_argument("--num_epochs", type=int, default=4)
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--grad_updates_per_step", type=int, default=16)
  p.add_argument("--learning_starts", type=int, default=1000)
  p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
  p.add_argument("--total_steps", type=int, default=262_144)
  p.add_argument("--episode_length", type=int, default=1000)
  args = p.parse_args()

  sps = []

  def progress(step, metrics):
    del step
    if "training/sps" in metrics:
      sps.append(float(metrics["training/sps"]))

  t0 = time.time()
  env = envs.get_environment(args.env)
  if args.agent == "ppo":
    from brax.training.agents.ppo import networks, train  # pylint: disable=import-outside-toplevel
    # Brax collects batch_size * num_minibatches trajectories of unroll_length per update;
    # batch_size = num_envs / num_minibatches makes that one unroll of all envs, as ours.
    assert args.num_envs % args.num_minibatches == 0
    train.train(environment=env, num_timesteps=args.total_steps, num_envs=args.num_envs,
                episode_length=args.episode_length, unroll_length=args.unroll_length,
                batch_size=args.num_envs // args.num_minibatches,
                num_minibatches=args.num_minibatches, num_updates_per_batch=args.num_epochs,
                learning_rate=1e-3, entropy_cost=1e-2, discounting=0.99, gae_lambda=0.95,
                clipping_epsilon=0.3, max_grad_norm=1.0, normalize_observations=True,
                bootstrap_on_timeout=True, num_evals=3, num_eval_envs=8,
                deterministic_eval=True, seed=0, progress_fn=progress,
                network_factory=functools.partial(
                    networks.make_ppo_networks, policy_hidden_layer_sizes=tuple(args.hidden),
                    value_hidden_layer_sizes=tuple(args.hidden)))
  else:
    from brax.training.agents.sac import networks, train  # pylint: disable=import-outside-toplevel
    train.train(environment=env, num_timesteps=args.total_steps, num_envs=args.num_envs,
                episode_length=args.episode_length, batch_size=args.batch_size,
                grad_updates_per_step=args.grad_updates_per_step,
                min_replay_size=args.learning_starts, max_replay_size=args.total_steps,
                learning_rate=3e-4, discounting=0.99, tau=0.005, num_evals=3, num_eval_envs=8,
                deterministic_eval=True, seed=0, progress_fn=progress,
                network_factory=functools.partial(networks.make_sac_networks,
                                                  hidden_layer_sizes=tuple(args.hidden)))
  print(json.dumps({"impl": "brax", "agent": args.agent, "jax": jax.__version__,
                    "env": args.env, "steps_per_second": sps[-1], "sps_per_epoch": sps,
                    "wall_seconds": time.time() - t0}))


if __name__ == "__main__":
  main()
