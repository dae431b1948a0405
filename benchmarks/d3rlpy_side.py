r"""d3rlpy 2.8.1's TD3+BC and IQL on one of our logged-data files: speed, or a trained actor.

    D3=runs/d3rlpy_venv/bin/python   # python -m venv runs/d3rlpy_venv && $D3 -m pip install d3rlpy==2.8.1
    $D3 benchmarks/d3rlpy_side.py --mode=speed --algo=td3_bc --dataset=PATH --steps=2000 --out=F.json
    $D3 benchmarks/d3rlpy_side.py --mode=train --algo=iql --dataset=PATH --steps=100000 --seed=0 --out=F.npz

Runs in d3rlpy's own virtualenv: numpy, torch, d3rlpy and the standard library only, no
jax and nothing of this project (benchmarks/offline_speed.py and
benchmarks/offline_scores.py call it).

The dataset (<PATH>.npz, our logged-data format: obs, action, reward, terminated,
truncated [N, T, ...]) becomes an `MDPDataset` of each trajectory's valid steps, with
`terminals` = terminated and `timeouts` = truncated. Configs are d3rlpy's defaults,
which are the papers' (256-256 ReLU encoders, batch 256, Adam 3e-4, α = 2.5; IQL
τ = 0.7, β = 3, max weight 100), with the preprocessing of the authors' code: TD3+BC
z-scores observations (`StandardObservationScaler`), IQL scales rewards by 1000 / return
range (`ReturnBasedRewardScaler(multiplier=1000)`) and decays the actor's step size by a
cosine over the run (`CosineAnnealingLRFactory`). Like D4RL's loader and ours, d3rlpy
drops the last step of a timed-out trajectory (it has no next observation). What
differs: d3rlpy's IQL takes one combined Q and V step (Q bootstrapping from the old V)
before the actor, where the authors' code and ours step V, the actor, then Q; its
log-std is a sigmoid-squashed parameter starting at −1.5 (theirs and ours: clipped,
starting at 0); and our IQL's return range counts the reward of a truncated last step,
which d3rlpy's leaves out. The evaluated action is tanh(μ) on both sides.

--mode=speed: gradient steps/s of `fit` for --steps steps after a 100-step warm-up fit
(dataset building and scaler fitting excluded); writes {"steps_per_second": ...}.
--mode=train: trains --steps steps and writes the deterministic actor's weights (linear
layers in order, as W [in, out] and b [out]; action = tanh of the last layer's output,
ReLU between) and the observation scaler's mean and std + eps (obs_mean, obs_scale),
and the seconds spent in `fit` (fit_seconds). With --checkpoints=K ≥ 1 it fits K equal
segments and writes the actor after each, its keys prefixed ckpt1_ … ckptK_ (the
candidates of benchmarks/ops_workflow.py).
"""

import argparse
import json
import time

import numpy as np


def mdp_dataset(path: str):
  """Our <path>.npz -> d3rlpy MDPDataset of the valid steps, trajectory after trajectory."""
  import d3rlpy  # pylint: disable=import-outside-toplevel
  with np.load(path + ".npz") as f:
    a = {k: f[k] for k in f.files}
  done = a["terminated"] | a["truncated"]
  valid = (np.cumsum(done, axis=1) - done) == 0
  return d3rlpy.dataset.MDPDataset(
      observations=a["obs"][valid].astype(np.float32), actions=a["action"][valid].astype(np.float32),
      rewards=a["reward"][valid].astype(np.float32),
      terminals=a["terminated"][valid].astype(np.float32),
      timeouts=a["truncated"][valid].astype(np.float32),
      action_space=d3rlpy.ActionSpace.CONTINUOUS)


def make_algo(name: str, steps: int, seed: int, device: str):
  """d3rlpy's TD3+BC or IQL with the authors' preprocessing, on `device` (cpu:0, cuda:0)."""
  import d3rlpy  # pylint: disable=import-outside-toplevel
  d3rlpy.seed(seed)
  if name == "td3_bc":
    config = d3rlpy.algos.TD3PlusBCConfig(
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler())
  elif name == "iql":
    config = d3rlpy.algos.IQLConfig(
        reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        actor_optim_factory=d3rlpy.optimizers.AdamFactory(
            lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)))
  else:
    raise SystemExit(f"error: unknown --algo {name!r} (td3_bc, iql)")
  return config.create(device=device)


def fit(algo, dataset, steps: int) -> None:
  import d3rlpy  # pylint: disable=import-outside-toplevel
  algo.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
           logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=10 ** 9)


def actor_layers(algo) -> list:
  """The deterministic actor's linear layers in order: the encoder's, then the action head
  (TD3+BC: DeterministicPolicy._fc; IQL: NormalPolicy._mu, whose std is a parameter, not a
  layer); the action is tanh of the head's output."""
  import torch  # pylint: disable=import-outside-toplevel
  return [m for m in algo.impl.policy.modules() if isinstance(m, torch.nn.Linear)]


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--mode", choices=("speed", "train"), required=True)
  p.add_argument("--algo", choices=("td3_bc", "iql"), required=True)
  p.add_argument("--dataset", required=True)
  p.add_argument("--steps", type=int, default=2000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True)
  p.add_argument("--device", default="cpu:0", help="torch device: cpu:0 or cuda:0")
  p.add_argument("--checkpoints", type=int, default=0,
                 help="train mode: export the actor after each of this many equal segments, "
                      "keys prefixed ckpt1_ ... (0: once at the end, no prefix)")
  p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
  args = p.parse_args()
  if args.threads is not None:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(args.threads)
  if args.checkpoints < 0 or args.checkpoints > args.steps:
    raise SystemExit(f"error: --checkpoints must be in [0, --steps], got {args.checkpoints}")
  dataset = mdp_dataset(args.dataset)
  algo = make_algo(args.algo, args.steps, args.seed, args.device)
  if args.mode == "speed":
    fit(algo, dataset, 100)                      # builds, fits scalers, warms up
    start = time.perf_counter()
    fit(algo, dataset, args.steps)
    seconds = time.perf_counter() - start
    with open(args.out, "w") as f:
      json.dump({"steps_per_second": args.steps / seconds, "seconds": seconds}, f)
    return
  out, fit_seconds = {}, 0.0
  segments = max(args.checkpoints, 1)
  for j in range(segments):
    start = time.perf_counter()
    fit(algo, dataset, args.steps * (j + 1) // segments - args.steps * j // segments)
    fit_seconds += time.perf_counter() - start
    prefix = f"ckpt{j + 1}_" if args.checkpoints else ""
    out.update({prefix + k: v for k, v in export_actor(algo, dataset).items()})
  out["fit_seconds"] = np.float64(fit_seconds)
  np.savez(args.out, **out)


def export_actor(algo, dataset) -> dict:
  """The deterministic actor as arrays (W{i} [in, out], b{i}, obs_mean, obs_scale), checked
  against d3rlpy's own predict on the first episode's observations."""
  out = {}
  for i, layer in enumerate(actor_layers(algo)):
    out[f"W{i}"] = layer.weight.detach().numpy().T
    out[f"b{i}"] = layer.bias.detach().numpy()
  scaler = algo.observation_scaler
  if scaler is not None and getattr(scaler, "mean", None) is not None:
    # StandardObservationScaler.transform: (x − mean) / (std + eps)
    out["obs_mean"] = np.asarray(scaler.mean, np.float32)
    out["obs_scale"] = np.asarray(scaler.std, np.float32) + np.float32(scaler.eps)
  obs = dataset.episodes[0].observations[:32].astype(np.float32)
  if "obs_mean" in out:
    x = (obs - out["obs_mean"]) / out["obs_scale"]
  else:
    x = obs
  n = len([k for k in out if k.startswith("W")])
  for i in range(n):
    x = x @ out[f"W{i}"] + out[f"b{i}"]
    x = np.maximum(x, 0) if i < n - 1 else np.tanh(x)
  gap = float(np.abs(x - algo.predict(obs)).max())
  if gap > 1e-4:
    raise SystemExit(f"error: exported actor differs from d3rlpy's by {gap}")
  return out


def jax_policy(arrays: dict, prefix: str = ""):
  """An exported actor (keys `prefix`W{i}, b{i}, obs_mean, obs_scale, as `export_actor`
  writes them) as a jax policy(obs [..., d], key) -> action [..., a], for the project's
  side (benchmarks/offline_scores.py, ops_workflow.py); jax is imported only here."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  w = {k[len(prefix):]: jnp.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
  n = len([k for k in w if k.startswith("W")])

  def policy(obs, key):
    del key
    x = (obs - w["obs_mean"]) / w["obs_scale"] if "obs_mean" in w else obs
    for i in range(n):
      x = x @ w[f"W{i}"] + w[f"b{i}"]
      x = jax.nn.relu(x) if i < n - 1 else jnp.tanh(x)
    return x

  return policy


if __name__ == "__main__":
  main()
