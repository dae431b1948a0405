r"""Why SAM-IS reads low: MWL weights of ops candidates under more steps / a larger
learning rate, and SAM-IS on the tests' tiny MDP as the target's action noise shrinks.

    python -m benchmarks.mwl_ablation --workdir=runs/ops/default --candidates=0,4,6

Part 1 reads an `experiments.ops` workdir (its dataset, TD3+BC candidate runs and
ops_summary.json), refits MWL for the given candidates (indices into the summary's
candidates, TD3+BC ones) at (steps, learning rate) = (500, 1e-3), (5000, 1e-3),
(5000, 1e-2), and prints SAM-IS with the mean weight at t < 20 and at t ≥ 50.
Part 2: SAM-IS against the exact value on tests/evaluation/tiny_mdp.py for target action
noise 1.0, 0.3, 0.1, 0.03, 0.01 (default MWL).
Part 3 (`--dataset_dir`, a make_dataset workdir): on its "medium" level, whose behaviour
is one checkpoint of the expert run acting stochastically, MWL for that same policy as the
target (the exact ratio is 1 everywhere and SAM-IS's truth is the data's own mean
discounted return) and for its deterministic (mean) action: the default MWL, with the
products of same-trajectory points kept in the loss, at the former default of 500 steps
at 1e-3, and at 1/4 and 4 times the median-heuristic bandwidth. Then the deterministic
action smoothed by the box-truncated Gaussian action kernel at h = 0.1 and 0.3 (what
`evaluation.sweep` gives MWL for deterministic candidates; 0.3 is ops' --bandwidth), with
its truth, the smoothed policy's discounted value, from 1000 episodes, and the kernel
PDIS estimate of the same policy beside it; at h = 0.3 also 10000 steps at 3e-3 and 1e-3
and a linear w (`--nosettings`: the smoothed targets' default MWL only).
Part 4 (`--profile`, with --dataset_dir; reward 1 per step alive, as brax/inverted_pendulum):
for the h = 0.3 smoothed target, the fitted weights' mean per range of t against the
exact one, Σ_t P_e(alive at t) / Σ_t P_b(alive at t) over the range (since
E_b[w*(x_t) 1{alive at t}] = P_e(alive at t)), from 1000 episodes of each policy; beside
it the mean cumulative kernel ratio Π_{k≤t} ρ_k over the data (what kernel PDIS weighs;
the same in expectation) with its SE and the number of trajectories alive there; under
MWL settings that each test one candidate cause of the late weights' collapse
(`--profile_settings` picks some by name).
`--mwl key=value` sets MWLConfig fields under every fit of Parts 3 and 4 (a setting's own
fields win) and `--part3_settings` picks Part 3's by name: the on-policy check under the
time kernel is `--mwl=time_bandwidth=1.0 --part3_settings=default`.
"""

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "An experiments.ops workdir (TD3+BC candidates).")
flags.DEFINE_list("candidates", ["0"], "Indices of TD3+BC candidates in ops_summary.json.")
flags.DEFINE_string("dataset_dir", None, "A make_dataset workdir (Part 3: on-policy MWL).")
flags.DEFINE_bool("tiny", True, "Run Part 2 (the tiny MDP).")
flags.DEFINE_bool("settings", True, "Part 3: the MWL settings (False: the smoothed targets only).")
flags.DEFINE_bool("profile", False, "Part 4: the weights per range of t against the exact ones.")
flags.DEFINE_list("profile_settings", [], "Part 4: only these settings (by name; default all).")
flags.DEFINE_list("part3_settings", [], "Part 3: only these on-policy settings (by name; "
                  "default all).")
flags.DEFINE_multi_string("mwl", [], "MWLConfig field key=value under every fit of Parts 3 "
                          "and 4 (a setting's own fields win), e.g. time_bandwidth=1.0.")
# Part 3's on-policy settings: (name, MWLConfig fields)
PART3_SETTINGS = (("default", {}),
                  ("same-trajectory pairs kept", dict(same_trajectory_pairs=True)),
                  ("500 steps at 1e-3", dict(steps=500, learning_rate=1e-3)),
                  ("500 steps at 1e-3 with same-trajectory pairs kept (before the fix)",
                   dict(steps=500, learning_rate=1e-3, same_trajectory_pairs=True)),
                  ("bandwidth x0.25", dict(bandwidth_scale=0.25)),
                  ("bandwidth x4", dict(bandwidth_scale=4.0)))
# Part 3's smoothed targets: the default, then (at h = 0.3, with --settings) the others
PART3_TARGET_SETTINGS = (("default", {}),
                         ("10000 steps at 3e-3", dict(steps=10000)),
                         ("10000 steps at 1e-3", dict(steps=10000, learning_rate=1e-3)),
                         ("linear w", dict(hidden=())))
BINS = ((0, 1), (1, 10), (10, 25), (25, 50), (50, 75), (75, None))  # None: the horizon


def part3_settings():
  """Part 3's on-policy settings that run: (name, MWLConfig fields), by --part3_settings."""
  return [(n, f) for n, f in PART3_SETTINGS
          if not FLAGS.part3_settings or n in FLAGS.part3_settings]


def part4_settings(h0: float, h32: float) -> list:
  """Part 4's settings that run (`profile_settings`, by --profile_settings)."""
  return [s for s in profile_settings(h0, h32)
          if not FLAGS.profile_settings or s[0] in FLAGS.profile_settings]


def weight_profile(w, mask):
  """Mean weight over the logged steps at t = 0, t < 10, 10 <= t < 50 and t >= 50 (numpy)."""
  out = [float(w[:, 0][mask[:, 0]].mean())]
  for lo, hi in ((0, 10), (10, 50), (50, w.shape[1])):
    m = mask[:, lo:hi]
    out.append(float(w[:, lo:hi][m].mean()) if m.any() else float("nan"))
  return "mean weight t=0 {:.2f}, t<10 {:.2f}, 10<=t<50 {:.2f}, t>=50 {:.2f}".format(*out)


def main(_):
  # an unknown Part 4 setting fails here, not after Parts 1-3 have run
  names = [name for name, _, _ in profile_settings(1.0, 1.0)]
  unknown = set(FLAGS.profile_settings) - set(names)
  if unknown:
    raise SystemExit(f"unknown --profile_settings {sorted(unknown)}; settings: "
                     + "; ".join(names))
  if FLAGS.part3_settings and not FLAGS.settings:
    raise SystemExit("--part3_settings picks among the settings that --nosettings leaves out")
  unknown = set(FLAGS.part3_settings) - {name for name, _ in PART3_SETTINGS}
  if unknown:
    raise SystemExit(f"unknown --part3_settings {sorted(unknown)}; settings: "
                     + "; ".join(name for name, _ in PART3_SETTINGS))
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np

  from evaluation import candidates, data as data_lib
  from evaluation.ope import marginal as mg
  from experiments import runner
  from experiments.agents import field_defaults, parse_overrides

  # --mwl under every setting that will run, checked before any part runs
  try:
    base = parse_overrides(FLAGS.mwl, field_defaults(mg.MWLConfig), "--mwl")
  except ValueError as e:
    raise SystemExit(f"error: {e}") from e
  part4 = [(n, f) for n, f, _ in part4_settings(1.0, 1.0)]
  for name, fields in part3_settings() + list(PART3_TARGET_SETTINGS) + part4:
    try:
      mg.MWLConfig(**{**base, **fields}).validate()
    except (ValueError, TypeError) as e:
      raise SystemExit(f"error: --mwl under the setting {name!r}: {e}") from e
  if base:
    print(f"MWL under every fit of Parts 3 and 4: {base}")
  from tests.evaluation import tiny_mdp as mdp

  if FLAGS.workdir:
    wd = FLAGS.workdir
    with open(os.path.join(wd, "ops_summary.json")) as f:
      s = json.load(f)
    data = data_lib.load(s["dataset"])
    run = os.path.join(wd, "candidates", "td3_bc")
    _, _, agent = runner.build(runner.RunSpec(**runner.read_spec(run)))
    family = candidates.DeterministicFamily(agent.make_policy)
    mask = np.asarray(data_lib.valid_mask(data.terminated, data.truncated))
    for c in map(int, FLAGS.candidates):
      label = s["candidates"][c]
      if label["agent"] != "td3_bc":
        raise SystemExit(f"candidate {c} is {label['agent']}'s; give TD3+BC candidates")
      params = jax.vmap(agent.policy_params)(runner.load_state(run, label["checkpoint"]))
      cand = {"params": jax.tree.map(lambda x: x[label["seed"]], params), "temperature": 0.0}
      print(f"candidate {c} (true value {label['true_value']:.1f}, SAM-IS in ops "
            f"{s['estimators']['sam_is']['estimates'][c]:.1f})")
      for steps, lr in ((500, 1e-3), (5000, 1e-3), (5000, 1e-2)):
        config = mg.MWLConfig(steps=steps, learning_rate=lr)
        w = jax.jit(lambda d, k, config=config: mg.mwl(
            d, lambda p, o, kk: family.sample(p, o, kk), cand, s["discount"], k, config))(
                data, jax.random.PRNGKey(0))
        wn = np.asarray(w)
        print(f"  steps {steps} lr {lr}: SAM-IS {float(mg.sam_is(data, w, s['discount'])):.1f}, "
              f"mean weight t<20 {wn[:, :20][mask[:, :20]].mean():.2f}, "
              f"t>=50 {wn[:, 50:][mask[:, 50:]].mean() if mask[:, 50:].any() else float('nan'):.2f}")

  if FLAGS.dataset_dir:
    on_policy(FLAGS.dataset_dir, base)
  if not FLAGS.tiny:
    return
  data, _ = mdp.sample(0, 20000, (0.0, 0.0), 1.0)
  means = (0.5, -0.5)
  for scale in (1.0, 0.3, 0.1, 0.03, 0.01):
    def sample(params, obs, key, scale=scale):
      del params
      s_ = jnp.argmax(obs, -1)
      return jnp.tanh(jnp.asarray(means)[s_] + scale * jax.random.normal(key, s_.shape))[..., None]
    w = jax.jit(lambda d, k, f=sample: mg.mwl(d, f, None, mdp.GAMMA, k))(data, jax.random.PRNGKey(1))
    value, exact = float(mg.sam_is(data, w, mdp.GAMMA)), mdp.exact(means, scale)[0][0, 0]
    print(f"tiny MDP, target noise {scale}: SAM-IS {value:.3f}, exact {exact:.3f}, "
          f"{(value - exact) / exact:+.1%}")


def on_policy(dataset_dir, base):
  """Part 3: MWL with the medium level's own behaviour policy as the target; `base`:
  MWLConfig fields under every fit (a setting's own win)."""
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np

  from envs.episodes import episode_returns
  from evaluation import data as data_lib
  from evaluation.ope import estimators as est
  from evaluation.ope import marginal as mg
  from experiments import runner

  with open(os.path.join(dataset_dir, "medium.json")) as f:
    meta = json.load(f)
  data = data_lib.load(os.path.join(dataset_dir, "medium"))
  expert = os.path.join(dataset_dir, "expert")
  step = int(meta["behavior_policy"].split("@")[1])
  _, env, agent = runner.build(runner.RunSpec(**runner.read_spec(expert)))
  params = jax.vmap(agent.policy_params)(runner.load_state(expert, step))
  with open(os.path.join(dataset_dir, "datasets.json")) as f:
    seed = json.load(f)["expert_seed"]           # make_dataset logs with the best seed
  params = jax.tree.map(lambda x: x[seed], params)
  gamma = meta["discount"]
  mask = np.asarray(data_lib.valid_mask(data.terminated, data.truncated))
  truth = float(np.mean(np.asarray(data_lib.discounted_returns(data, gamma))))
  print(f"on-policy check on {dataset_dir}/medium ({meta['behavior_policy']}, "
        f"{data.reward.shape[0]} x {data.reward.shape[1]}): logged discounted return {truth:.2f}")
  settings = part3_settings()

  def fit(name, sample, fields, features=mg.default_features):
    """MWL weights [N, T] for target `sample` under MWLConfig(**fields) and `features`;
    prints SAM-IS and the weights' profile under `name` (the line left open)."""
    config = mg.MWLConfig(**{**base, **fields})
    w = jax.jit(lambda d, k: mg.mwl(d, sample, params, gamma, k, config, features))(
        data, jax.random.PRNGKey(0))
    print(f"    {name}: SAM-IS {float(mg.sam_is(data, w, gamma)):.2f}, "
          f"{weight_profile(np.asarray(w), mask)}", end="")
    return np.asarray(w)

  for deterministic in (False, True) if FLAGS.settings else ():
    sample = lambda p, o, k, d=deterministic: agent.make_policy(p, d)(o, k)
    print(f"  target: {'its deterministic mean' if deterministic else 'the behaviour itself'}")
    for name, fields in settings:
      fit(name, sample, fields)
      print()
  mean_actions = jax.vmap(lambda o: agent.make_policy(params, True)(o, jax.random.PRNGKey(0)))(
      data.obs)                                               # [N, T, a]
  residual = (np.asarray(data.action) - np.asarray(mean_actions))[mask]
  lengths = mask.sum(1)
  print(f"  behaviour: actions scatter {residual.std():.2f} (std) about its mean action; "
        f"{np.asarray(data.terminated).any(1).mean():.0%} of episodes terminate, median "
        f"length {np.median(lengths):.0f}")
  for h in (0.1, 0.3):
    sample = lambda p, o, k, h=h: est.sample_kernel(k, agent.make_policy(p, True)(o, k), h)
    value = float(jax.jit(lambda k, f=sample: episode_returns(
        env, lambda o, kk: f(params, o, kk), k, 1000, data.horizon, gamma).mean())(
            jax.random.PRNGKey(1)))
    lr = est.kernel_log_ratio(data, mean_actions, h)
    pdis = float(est.estimate_all(data, lr[None], gamma)["pdis"][0])
    # at t = 0 the states are the behaviour's, so w is the action ratio, known exactly
    exact0 = np.exp(np.asarray(lr)[:, 0])
    print(f"  target: its deterministic mean smoothed by the action kernel, h = {h} "
          f"(true value {value:.2f}; kernel PDIS {pdis:.2f}; exact mean w at t=0 over "
          f"this data {exact0.mean():.2f})")
    variants = PART3_TARGET_SETTINGS[:1 if not FLAGS.settings or h != 0.3 else None]
    for name, fields in variants:
      w = fit(name, sample, fields)
      print(f", correlation with the exact ratio at t=0 {np.corrcoef(w[:, 0], exact0)[0, 1]:.2f}")
    if FLAGS.profile and h == 0.3:
      # inverted_pendulum pays 1 a step alive: an episode's undiscounted return is its length
      if not np.allclose(np.asarray(data.reward)[mask], 1.0):
        raise SystemExit("--profile needs a reward of 1 per step alive (brax/inverted_pendulum)")
      lengths = [np.asarray(jax.jit(lambda k, f=f: episode_returns(
          env, lambda o, kk: f(params, o, kk), k, 1000, data.horizon, 1.0))(jax.random.PRNGKey(2)))
                 for f in (sample, lambda p, o, k: agent.make_policy(p, False)(o, k))]
      profile(data, mask, np.asarray(lr), lambda name, fields, feats, f=sample: fit(
          name, f, fields, feats), *lengths)


def profile(data, mask, log_rho, fit, lengths_e, lengths_b):
  """Part 4: fitted against exact mean weight per range of t (BINS), per MWL setting.
  log_rho [N, T] the per-step log kernel ratio; fit(name, fields, features) -> w [N, T];
  lengths_e, lengths_b [M]: episode lengths of π_e and π_b on the env.

  The exact mean of w* over the data's steps in a range R of t is
  Σ_{t∈R} P_e(alive at t) / Σ_{t∈R} P_b(alive at t), since E_b[w*(x_t) 1{alive at t}] =
  P_e(alive at t); the mean cumulative kernel ratio over the data estimates the same
  consistently, but from 50 trajectories its heavy tail is rarely seen."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  cum = np.exp(np.cumsum(np.where(mask, log_rho, 0.0), axis=1))   # Π_{k≤t} ρ_k
  horizon = mask.shape[1]
  bins = [(lo, horizon if hi is None else min(hi, horizon)) for lo, hi in BINS if lo < horizon]

  def per_bin(w):
    return [w[:, lo:hi][mask[:, lo:hi]].mean() if mask[:, lo:hi].any() else np.nan
            for lo, hi in bins]

  def se(lo, hi):
    """SE of the pooled mean Σ_i S_i / Σ_i n_i of Π ρ over the steps in [lo, hi), with the
    trajectories as the independent units (ratio estimator, delta method)."""
    m = mask[:, lo:hi]
    sums, counts = np.where(m, cum[:, lo:hi], 0.0).sum(1), m.sum(1)
    if (counts > 0).sum() < 2:
      return np.nan
    resid = sums - counts * sums.sum() / counts.sum()
    n = len(resid)
    return float(np.sqrt(n / (n - 1) * np.sum(resid ** 2)) / counts.sum())

  head = " | ".join(f"{lo}-{hi - 1}" if hi - lo > 1 else f"{lo}" for lo, hi in bins)
  print(f"\n  Part 4, h = 0.3: mean weight over the logged steps in each range of t\n"
        f"  | | {head} |\n  |---" + "|---" * len(bins) + "|")
  print("  | trajectories alive | " + " | ".join(
      str(int(mask[:, lo:hi].any(1).sum())) for lo, hi in bins) + " |")
  print(f"  mean episode length: π_b on the env {lengths_b.mean():.1f} (the data's "
        f"{mask.sum(1).mean():.1f}), π_e {lengths_e.mean():.1f}")
  alive = lambda lengths, lo, hi: sum(float(np.mean(lengths > t)) for t in range(lo, hi))
  ratio = lambda lo, hi: (alive(lengths_e, lo, hi) / alive(lengths_b, lo, hi)
                          if alive(lengths_b, lo, hi) > 0 else float("nan"))
  print("  | exact: Σ P_e(alive) / Σ P_b(alive), 1000 episodes each | " + " | ".join(
      f"{ratio(lo, hi):.2f}" for lo, hi in bins) + " |")
  print("  | mean Π ρ over the data ± SE | " + " | ".join(
      f"{e:.2f} ± {se(lo, hi):.2f}" for e, (lo, hi) in zip(per_bin(cum), bins)) + " |")
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from evaluation.ope import marginal as mg  # pylint: disable=import-outside-toplevel

  def median_bandwidth(feats):
    """The median heuristic of `mwl` (√(median ‖x − y‖² / 2) over standardised features)
    on 768 logged steps, for `feats`: to hold one resolution fixed while changing another."""
    t_index = np.broadcast_to(np.arange(horizon), mask.shape)
    z = np.asarray(feats(data.obs, data.action, jnp.asarray(t_index), horizon))[mask]
    z = (z - z.mean(0)) / np.where(z.std(0) > 1e-6, z.std(0), 1.0)
    z = z[np.random.default_rng(0).choice(len(z), 768, replace=False)]
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)[np.triu_indices(len(z), 1)]
    return float(np.sqrt(np.median(d2) / 2))

  h0, h32 = median_bandwidth(mg.default_features), median_bandwidth(time_repeated(32))
  print(f"  median-heuristic bandwidth: default features {h0:.2f}, t feature x32 {h32:.2f}")
  for name, fields, feats in part4_settings(h0, h32):
    w = fit(name, fields, feats)
    print()
    print(f"  | {name} | " + " | ".join(f"{v:.2f}" for v in per_bin(w)) + " |")


def time_repeated(copies):
  """φ = [s, a, t/T repeated `copies` times] -> [..., d + a + copies]: each copy is
  standardised like the other features, so the Gaussian kernel resolves t `copies`^½ times
  more finely than (s, a) at the same bandwidth."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  return lambda obs, action, t, horizon: jnp.concatenate(
      [obs, action] + [(t / horizon)[..., None].astype(obs.dtype)] * copies, axis=-1)


def profile_settings(h0: float, h32: float) -> tuple:
  """Part 4's MWL settings, (name, MWLConfig fields, features) each; h0 and h32 are the
  median-heuristic bandwidths of the default features and of `time_repeated(32)`."""
  from evaluation.ope import marginal as mg  # pylint: disable=import-outside-toplevel
  return (("default", {}, mg.default_features),
          ("same-trajectory pairs kept (V-statistic)", dict(same_trajectory_pairs=True),
           mg.default_features),
          ("bandwidth x0.25", dict(bandwidth_scale=0.25), mg.default_features),
          ("bandwidth x4", dict(bandwidth_scale=4.0), mg.default_features),
          ("10000 steps", dict(steps=10000), mg.default_features),
          ("linear w", dict(hidden=()), mg.default_features),
          ("t feature x8", {}, time_repeated(8)),
          ("t feature x32", {}, time_repeated(32)),
          # the two controls of x32: t alone finer, and (s, a) alone coarser
          ("t feature x32 at the default's bandwidth", dict(bandwidth=h0), time_repeated(32)),
          ("default features at the bandwidth of x32", dict(bandwidth=h32),
           mg.default_features),
          # the product kernel in t (MWLConfig.time_bandwidth, in steps), (s, a) as default
          ("time kernel h_t = 1 step", dict(time_bandwidth=1.0), mg.default_features),
          ("time kernel h_t = 3 steps", dict(time_bandwidth=3.0), mg.default_features),
          ("time kernel h_t = 10 steps", dict(time_bandwidth=10.0), mg.default_features),
          # and the time-only test functions g(t) added (k_t · (k_φ + c))
          ("time kernel h_t = 1 step + time-only functions c = 1",
           dict(time_bandwidth=1.0, time_only=1.0), mg.default_features),
          ("time kernel h_t = 1 step + time-only functions c = 10",
           dict(time_bandwidth=1.0, time_only=10.0), mg.default_features),
          # with t resolved and the per-step mass tied, the resolution of (s, a)
          ("time kernel h_t = 1 step + time-only functions c = 10 at bandwidth x0.5",
           dict(time_bandwidth=1.0, time_only=10.0, bandwidth_scale=0.5), mg.default_features),
          ("time kernel h_t = 1 step + time-only functions c = 10 at bandwidth x2",
           dict(time_bandwidth=1.0, time_only=10.0, bandwidth_scale=2.0), mg.default_features))


if __name__ == "__main__":
  app.run(main)
