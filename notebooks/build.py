"""Writes the Colab notebooks of this folder (unexecuted) from the cells below, so that
they share one install cell and stay consistent: `python notebooks/build.py`.

Each notebook: (1) installs the repository (in Colab it clones and pip-installs it; inside
a checkout it uses that checkout), (2) reads its budget from $NOTEBOOK_BUDGET ("tiny": the
tests' smoke run; "small", the default: minutes on a Colab GPU), (3) runs a small
reproduction through the repository's binaries, (4) shows the result beside the paper's
reported numbers or claim and, where BENCHMARKS.md has one, our full-budget figure.
"""

import os

import nbformat
from nbformat import v4

HERE = os.path.dirname(os.path.abspath(__file__))

INSTALL = '''\
# Colab: clone and install offpolicy-lab (with CUDA jax when there is a GPU).
# Inside a checkout (CI, local Jupyter) the checkout is used as it is.
import os, shutil, subprocess, sys
if os.path.isfile("../pyproject.toml") and os.path.isdir("../experiments"):
    ROOT = os.path.abspath("..")
else:
    ROOT = os.path.abspath("offpolicy-lab")
    if not os.path.isdir(ROOT):
        subprocess.run(["git", "clone", "--depth=1", os.environ.get(
            "OFFPOLICY_LAB_REPO", "https://github.com/offpolicy-lab/offpolicy-lab"), ROOT],
            check=True)
    extra = "[cuda]" if shutil.which("nvidia-smi") else ""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ROOT + extra], check=True)
os.chdir(ROOT)
sys.path.insert(0, ROOT)
from experiments import notebook as nb
%matplotlib inline
import matplotlib.pyplot as plt'''


def md(text):
  return v4.new_markdown_cell(text.strip())


def code(text):
  return v4.new_code_cell(text.strip())


PROPS = [
    md('''
# PROPS: on-policy policy gradients without on-policy sampling

Corrado & Hanna, *On-Policy Policy Gradient Reinforcement Learning Without On-Policy
Sampling* ([arXiv:2311.08290](https://arxiv.org/abs/2311.08290)). PROPS keeps a buffer of
past batches and collects each new batch with a behaviour policy adapted to reduce
*sampling error*: the gap between the empirical action distribution in the buffer and the
current policy. The paper reports lower sampling error than PPO with the same buffer and
better data efficiency on MuJoCo tasks (its sampling-error and return figures).

This notebook runs `benchmarks/props_sampling_error.py`: PROPS, PPO with the same buffer
(`ppo_buffer`), and PPO, several seeds vmapped in one program each.'''),
    code(INSTALL),
    code('''
BUDGET, S = nb.budget({
    # smoke run (CI): seconds, PROPS alone, nothing learned
    "tiny": dict(env="brax/inverted_pendulum", total_steps=512, num_seeds=2, num_evals=2,
                 eval_episodes=2, se_epochs=1, variants="props", override=["num_envs=4", "unroll_length=16", "segments=2",
                                        "num_minibatches=2", "props_minibatches=2",
                                        "num_epochs=2", "props_epochs=2",
                                        "policy_hidden=(16,)", "value_hidden=(16,)"]),
    # minutes on a Colab GPU: the authors' Hopper settings, 300k steps
    "small": dict(env="brax/hopper", total_steps=300_000, num_seeds=5, num_evals=20,
                  eval_episodes=8, se_epochs=50, variants="props,ppo_buffer,ppo", override=[]),
})
RUNS = nb.runs_dir("props")
print(BUDGET, S)'''),
    code('''
nb.run("benchmarks.props_sampling_error", f"--env={S['env']}", f"--total_steps={S['total_steps']}",
       f"--num_seeds={S['num_seeds']}", f"--num_evals={S['num_evals']}",
       f"--eval_episodes={S['eval_episodes']}", f"--se_epochs={S['se_epochs']}", f"--variants={S['variants']}", f"--runs={RUNS}",
       *[f"--override={o}" for o in S["override"]])'''),
    md('''
Left: this run. Right: ours at 300k env steps × 5 seeds on brax/hopper (BENCHMARKS.md,
"PROPS vs PPO with a buffer vs PPO"). The paper's claims to compare with: PROPS's
sampling error stays below `ppo_buffer`'s throughout training, and its return is at least
PPO's. BENCHMARKS.md says where our runs agree and where they do not.'''),
    code('''
nb.show_images([f"{RUNS}/summary.png", "benchmarks/figures/props_hopper.png"],
               [f"this run ({BUDGET})", "ours: brax/hopper, 300k steps, 5 seeds"])
plt.show()
assert os.path.isfile(f"{RUNS}/summary.json")'''),
]

MDPO = [
    md('''
# MDPO: mirror descent policy optimisation (on-policy)

Tomar, Shani, Efroni & Ghavamzadeh, *Mirror Descent Policy Optimization*
([arXiv:2005.09814](https://arxiv.org/abs/2005.09814)). On-policy MDPO takes several SGD
steps on the mirror-descent objective (advantage-weighted ratio minus a KL penalty with
step size t_k) per batch, without PPO's clipping. The paper reports on-policy MDPO on par
with or better than PPO on MuJoCo (its Table 1 and learning curves).

This notebook trains MDPO and PPO with the same batch layout through `experiments.train`
and plots their learning curves.'''),
    code(INSTALL),
    code('''
from benchmarks.props_sampling_error import PPO_MDPO  # PPO matched to MDPO's setting
BUDGET, S = nb.budget({
    # smoke run (CI): MDPO alone, seconds, nothing learned
    "tiny": dict(env="brax/inverted_pendulum", total_steps=768, num_seeds=2, num_evals=2,
                 env_args=["episode_length=50"], agents=["mdpo"], mdpo=["num_envs=8", "unroll_length=8", "value_minibatches=2", "sgd_steps=2",
                       "policy_hidden=(16,)", "value_hidden=(16,)"],
                 ppo=["num_envs=8", "unroll_length=8", "num_minibatches=2", "num_epochs=2",
                      "policy_hidden=(16,)", "value_hidden=(16,)"]),
    # the authors' setting (1 env x 2048 steps, m = 10) and PPO matched to it (rl-zoo's
    # MuJoCo PPO2: 10 epochs x 32 minibatches, clip 0.2), 300k steps
    "small": dict(env="brax/hopper", total_steps=300_000, num_seeds=5, num_evals=15,
                  env_args=[], agents=["mdpo", "ppo"], mdpo=[],
                  ppo=[f"{k}={v!r}" for k, v in PPO_MDPO.items()]),
})
RUNS = nb.runs_dir("mdpo")
print(BUDGET, S)'''),
    code('''
for agent in S["agents"]:
    nb.run("experiments.train", f"--agent={agent}", f"--env={S['env']}",
           f"--total_steps={S['total_steps']}", f"--num_seeds={S['num_seeds']}",
           f"--num_evals={S['num_evals']}", f"--workdir={RUNS}/{agent}", "--noprogress",
           *[f"--env_arg={a}" for a in S["env_args"]], *[f"--override={o}" for o in S[agent]])'''),
    md('''
Left: this run. Right: ours at 1M env steps × 5 seeds on brax/hopper (BENCHMARKS.md,
"On-policy MDPO"), where PPO matched to MDPO finishes ahead (IQM 3461 against 2572): the
paper's claim is not reproduced there, and BENCHMARKS.md shows why.'''),
    code('''
nb.curves_beside({a.upper(): f"{RUNS}/{a}" for a in S["agents"]}, f"{RUNS}/curves.png",
                 f"this run: {S['env']} ({BUDGET})", "benchmarks/figures/mdpo_hopper_1m.png",
                 "ours: brax/hopper, 1M steps, 5 seeds")
plt.show()'''),
]

AILBOOST = [
    md('''
# AILBoost: boosted adversarial imitation learning, against DAC

Chang, Swamy, Choudhury, Sun & Bagnell, *Adversarial Imitation Learning via Boosting*
([arXiv:2404.08513](https://arxiv.org/abs/2404.08513)). AILBoost keeps a weighted ensemble
of policies (weights decayed by η per round) and trains the discriminator against the
ensemble's replay, where DAC (Kostrikov et al. 2019) trains it against the current
policy's. The paper reports AILBoost above DAC on DeepMind Control for every number of
demonstrations (its Figure 2).

This notebook collects expert demonstrations (a SAC expert trained here), then trains
AILBoost and DAC on them through `experiments.train`.'''),
    code(INSTALL),
    code('''
TINY_NET = ["num_envs=4", "unroll_length=8", "hidden=(16,16)", "batch_size=32",
            "learning_starts=64", "buffer_size=4096"]
BUDGET, S = nb.budget({
    # smoke run (CI): AILBoost alone, seconds, nothing learned
    "tiny": dict(env="brax/inverted_pendulum", env_args=["episode_length=50"], expert_steps=512,
                 expert=TINY_NET, agents=["ailboost"],
                 total_steps=512, num_seeds=2, num_evals=2, demos=1, learner=TINY_NET,
                 ailboost=["learner_steps=256", "num_samples=50"]),
    # BENCHMARKS.md's AILBoost vs DAC setting (both learners the same SAC, Adam 3e-4), 50k steps
    "small": dict(env="dmc/cartpole_swingup", env_args=[], expert_steps=200_000, expert=[],
                  agents=["ailboost", "dac"],
                  total_steps=50_000, num_seeds=5, num_evals=10, demos=4,
                  learner=["num_envs=8", "unroll_length=25", "utd_ratio=0.5", "batch_size=256",
                           "hidden=(256,256)", "buffer_size=200000", "learning_starts=5000",
                           "actor_learning_rate=0.0003", "critic_learning_rate=0.0003",
                           "alpha_learning_rate=0.0003"],
                  ailboost=[]),
})
RUNS = nb.runs_dir("ailboost")
print(BUDGET, S)'''),
    code('''
DEMOS = f"{RUNS}/demos"
nb.run("experiments.collect_demos", f"--env={S['env']}", f"--expert_workdir={RUNS}/expert",
       f"--expert_steps={S['expert_steps']}", f"--num_trajectories={S['demos']}",
       f"--out={DEMOS}", *[f"--env_arg={a}" for a in S["env_args"]],
       *[f"--expert_override={o}" for o in S["expert"]])
for agent in S["agents"]:
    nb.run("experiments.train", f"--agent={agent}", f"--env={S['env']}", f"--demos={DEMOS}",
           f"--total_steps={S['total_steps']}", f"--num_seeds={S['num_seeds']}",
           f"--num_evals={S['num_evals']}", f"--workdir={RUNS}/{agent}", "--noprogress",
           *[f"--env_arg={a}" for a in S["env_args"]],
           *[f"--override={o}" for o in S["learner"] + S.get(agent, [])])'''),
    md('''
Left: this run. Right: ours on cartpole_balance and cartpole_swingup (BENCHMARKS.md,
"AILBoost vs DAC"), where DAC is ahead at 30-36k steps: the paper's ordering is not
reproduced at that budget, and BENCHMARKS.md says what differs from the paper's setting.'''),
    code('''
names = {"ailboost": "AILBoost", "dac": "DAC"}
nb.curves_beside({names[a]: f"{RUNS}/{a}" for a in S["agents"]}, f"{RUNS}/curves.png",
                 f"this run: {S['env']}, {S['demos']} demo(s) ({BUDGET})",
                 "benchmarks/figures/imitation.png", "ours: DMC cartpole, 5 seeds (BENCHMARKS.md)")
plt.show()'''),
]

SHARPE = [
    md('''
# SharpeRatio@k: the risk-return tradeoff of off-policy evaluation

Kiyohara, Kishimoto, Nakata, Saito & Sakai (2023), *Towards Assessing and Benchmarking
Risk-Return Tradeoff of Off-Policy Evaluation*
([arXiv:2311.18207](https://arxiv.org/abs/2311.18207)). An OPE estimator picks its top-k
candidate policies for online A/B tests. SharpeRatio@k is the portfolio's best return
above the behaviour policy's value, divided by the standard deviation of the portfolio's
true values. The paper shows that it separates estimators that nDCG, regret and RankCorr
do not tell apart. Its example: estimators with the same accuracy whose top-k portfolios
carry very different risk (its figures of SharpeRatio@k against k).

This notebook runs `experiments.ope_sweep`: candidate policies from a PPO run's
checkpoints at several temperatures, logged datasets from the behaviour policy, seven OPE
estimators, and SharpeRatio@k with the other top-k metrics against Monte-Carlo truths.'''),
    code(INSTALL),
    code('''
BUDGET, S = nb.budget({
    "tiny": ["--env=brax/inverted_pendulum", "--policy_steps=1024", "--policy_stages=2",
             "--policy_override=num_envs=8", "--policy_override=unroll_length=16",
             "--policy_override=num_minibatches=2", "--policy_override=num_epochs=2",
             "--policy_override=policy_hidden=(16,)", "--policy_override=value_hidden=(16,)",
             "--temperatures=0.5,1.0", "--horizon=20", "--num_datasets=2",
             "--num_trajectories=16", "--true_episodes=32", "--fqe_steps_per_stage=5",
             "--num_bootstrap=100"],
    # the default experiment (dmc/cartpole_balance), as in BENCHMARKS.md
    "small": [],
})
RUNS = nb.runs_dir("sharpe_ratio")
out = nb.run("experiments.ope_sweep", f"--workdir={RUNS}", *S)'''),
    md('''
Left: SharpeRatio@k of each estimator against k in this run. Right: ours on
dmc/cartpole_balance (BENCHMARKS.md, after issue 12's fixes). As in the paper, estimators whose
accuracy (MSE) is alike can differ in SharpeRatio@k, the high-variance IS forms placing
risky candidates in their top k.'''),
    code('''
nb.show_images([f"{RUNS}/sharpe_ratio_at_k.png", "benchmarks/figures/ope12_sharpe_ratio_cartpole_balance.png"],
               [f"this run ({BUDGET})", "ours: dmc/cartpole_balance (BENCHMARKS.md)"])
plt.show()
nb.show_images([f"{RUNS}/estimated_vs_true.png"], ["estimates against true values"])
plt.show()'''),
]

OFFLINE = [
    md('''
# Offline RL: TD3+BC and IQL on D4RL-style datasets

Fujimoto & Gu, *A Minimalist Approach to Offline Reinforcement Learning* (TD3+BC,
[arXiv:2106.06860](https://arxiv.org/abs/2106.06860)) and Kostrikov, Nair & Levine,
*Offline Reinforcement Learning with Implicit Q-Learning* (IQL,
[arXiv:2110.06169](https://arxiv.org/abs/2110.06169)). D4RL's files cannot be downloaded
in every sandbox, so `experiments.make_dataset` makes the levels the way D4RL made them,
with an expert trained here; the scores are D4RL's normalisation against this dataset's
random and expert returns.

The papers' D4RL (v2) hopper scores, for reference (TD3+BC Table 1, IQL Table 1):
medium 59.3 / 66.3, medium-replay 60.9 / 94.7. Ours are on Brax's hopper, a different
simulator and expert, so only the order and the scale compare.'''),
    code(INSTALL),
    code('''
PAPER = {"td3_bc": {"medium": 59.3, "medium-replay": 60.9},
         "iql": {"medium": 66.3, "medium-replay": 94.7}}
BUDGET, S = nb.budget({
    # smoke run (CI): TD3+BC on one level, seconds, nothing learned
    "tiny": dict(env="brax/inverted_pendulum", expert_steps=4096, trajectories=8,
                 env_args=["episode_length=50"], grad_steps=64, num_seeds=2,
                 expert=["num_envs=8", "unroll_length=16", "num_minibatches=2",
                         "num_epochs=2", "policy_hidden=(16,)", "value_hidden=(16,)"],
                 agent=["hidden=(16,)", "batch_size=32", "grad_steps=32"], agents=["td3_bc"],
                 levels=["medium"]),
    "small": dict(env="brax/hopper", expert_steps=2_000_000, trajectories=100, env_args=[],
                  grad_steps=100_000, num_seeds=3, expert=[], agent=[], agents=["td3_bc", "iql"],
                  levels=["medium", "medium-replay"]),
})
RUNS = nb.runs_dir("offline")
print(BUDGET, S)'''),
    code('''
import json
nb.run("experiments.make_dataset", f"--env={S['env']}", f"--workdir={RUNS}/datasets",
       f"--expert_steps={S['expert_steps']}", f"--num_trajectories={S['trajectories']}",
       *[f"--env_arg={a}" for a in S["env_args"]],
       *[f"--expert_override={o}" for o in S["expert"]])
scores = {}
for agent in S["agents"]:
    for level in S["levels"]:
        wd = f"{RUNS}/{agent}_{level}"
        nb.run("experiments.train", f"--agent={agent}", f"--env={S['env']}",
               f"--dataset={RUNS}/datasets/{level}", f"--total_steps={S['grad_steps']}",
               f"--num_seeds={S['num_seeds']}", "--num_evals=2", f"--workdir={wd}",
               "--noprogress", *[f"--env_arg={a}" for a in S["env_args"]],
               *[f"--override={o}" for o in S["agent"]])
        with open(f"{wd}/summary.json") as f:
            scores[agent, level] = json.load(f)["final_normalized_score"]'''),
    md('''
Normalised scores (100 = the dataset's expert, 0 = uniform random actions): the papers'
D4RL numbers beside this run's mean over seeds (dots: seeds).'''),
    code('''
import numpy as np
fig, ax = plt.subplots(figsize=(7, 4))
cells = [(a, l) for a in S["agents"] for l in S["levels"]]
x = np.arange(len(cells))
ax.bar(x - 0.2, [PAPER[a][l] for a, l in cells], 0.4, label="paper (D4RL hopper)")
ours = [scores[c] for c in cells]
ax.bar(x + 0.2, [np.mean(s) for s in ours], 0.4, label=f"this run ({S['env']}, {BUDGET})")
for i, s in enumerate(ours):
    ax.plot([x[i] + 0.2] * len(s), s, "k.")
ax.set_xticks(x, [f"{a}\\n{l}" for a, l in cells])
ax.set_ylabel("normalised score")
ax.legend()
plt.show()'''),
]

NOTEBOOKS = {"props": PROPS, "mdpo": MDPO, "ailboost": AILBOOST,
             "sharpe_ratio_at_k": SHARPE, "offline_rl": OFFLINE}


def main():
  for name, cells in NOTEBOOKS.items():
    for i, cell in enumerate(cells):
      cell.id = f"{name}-{i}"            # stable ids: a rebuild changes only what changed
    book = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}, "accelerator": "GPU",
        "colab": {"provenance": []}})
    nbformat.write(book, os.path.join(HERE, f"{name}.ipynb"))
    print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
  main()
