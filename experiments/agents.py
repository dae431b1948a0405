"""The agents the binaries can train, and `key=value` overrides of their configs."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Callable, Optional

from algorithms import (a2pr, ailboost, dac, iql, mdpo, mdpo_offpolicy, ppo, prdc, props, sac,
                        td3, td3_bc)



def load_demos(path: str) -> dict:
  """The arrays imitation agents take (obs, action, terminated, truncated [N, T, ...]) of
  a logged-data file (`experiments/collect_demos.py`), validated on load."""
  from evaluation import data as data_lib  # pylint: disable=import-outside-toplevel
  demos = data_lib.load(path)
  return {"obs": demos.obs, "action": demos.action, "terminated": demos.terminated,
          "truncated": demos.truncated}


def _imitation(make_agent: Callable) -> Callable:
  """make_agent(config, env, demos) -> make_agent(config, env) reading config.demos."""
  return lambda config, env: make_agent(config, env, load_demos(config.demos))


def load_dataset(path: str, env) -> dict:
  """The arrays offline agents take (obs, action, reward, terminated, truncated [N, T, ...])
  of a logged-data file, validated on load and checked against `env`: name, sizes, and
  episode length where the data carries reference returns."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from evaluation import data as data_lib  # pylint: disable=import-outside-toplevel
  data = data_lib.load(path)
  problems = []
  if data.metadata.get("env") not in (None, env.name):
    problems.append(f"it was logged on {data.metadata['env']}, not {env.name}")
  if data.obs.shape[-1] != env.observation_size or data.action.shape[-1] != env.action_size:
    problems.append(f"its observations / actions have sizes {data.obs.shape[-1]} / "
                    f"{data.action.shape[-1]}, {env.name}'s are {env.observation_size} / "
                    f"{env.action_size}")
  if data.metadata.get("reference_returns") and data.horizon != env.episode_length:
    # the references are returns of data.horizon-step episodes: the normalised score
    # compares them with the evaluation episodes, so the two lengths must agree
    problems.append(f"its episodes and reference returns are {data.horizon} steps long, "
                    f"{env.name}'s episodes {env.episode_length} "
                    f"(--env_arg=episode_length={data.horizon})")
  if problems:
    raise data_lib.DataError(f"dataset {path} does not fit --env={env.name}: " + "; ".join(problems))
  return {k: np.asarray(getattr(data, k)) for k in data_lib.ARRAYS}


def _offline(make_agent: Callable, name: str) -> Callable:
  """make_agent(config, env, data) -> make_agent(config, env) reading config.dataset."""
  def make(config, env):
    if not config.dataset:
      raise ValueError(f"{name} learns from a dataset: --dataset=PATH "
                       "(experiments/make_dataset.py makes them)")
    return make_agent(config, env, load_dataset(config.dataset, env))
  return make


# Agents that learn from a fixed dataset (--dataset) rather than from the env.
OFFLINE = ("td3_bc", "iql", "prdc", "a2pr")

# name -> (config dataclass, make_agent(config, env) -> Agent)
AGENTS: dict[str, tuple[type, Callable]] = {
    "ppo": (ppo.PPOConfig, ppo.make_agent),
    "mdpo": (mdpo.MDPOConfig, mdpo.make_agent),
    "props": (props.PROPSConfig, props.make_agent),
    "sac": (sac.SACConfig, sac.make_agent),
    "td3": (td3.TD3Config, td3.make_agent),
    "mdpo_off": (mdpo_offpolicy.MDPOOffConfig, mdpo_offpolicy.make_agent),
    "dac": (dac.DACConfig, _imitation(dac.make_agent)),
    # The AILBoost paper's DAC baseline (its authors' dac.yaml).
    "dac_ailboost": (dac.AILBoostBaselineConfig, _imitation(dac.make_agent)),
    "ailboost": (ailboost.AILBoostConfig, _imitation(ailboost.make_agent)),
    # AILBoost with our DAC's discriminator (boosting at equal discriminator strength).
    "ailboost_dacdisc": (ailboost.AILBoostDACDiscConfig, _imitation(ailboost.make_agent)),
    "td3_bc": (td3_bc.TD3BCConfig, _offline(td3_bc.make_agent, "TD3+BC")),
    "iql": (iql.IQLConfig, _offline(iql.make_agent, "IQL")),
    "prdc": (prdc.PRDCConfig, _offline(prdc.make_agent, "PRDC")),
    "a2pr": (a2pr.A2PRConfig, _offline(a2pr.make_agent, "A2PR")),
}


def policy_network(agent: str, config, env) -> tuple[Any, float]:
  """(policy net emitting 2·action_size tanh-Gaussian parameters, min_std) of `agent`.

  For OPE candidate pools; TD3's deterministic actor has no such network.
  """
  if agent in ("ppo", "mdpo", "props"):
    return ppo.networks(config, env)[0], config.min_std
  if agent in ("sac", "dac", "dac_ailboost", "ailboost", "ailboost_dacdisc"):
    return sac.networks(config, env.action_size)[0], config.min_std
  if agent == "mdpo_off":
    return mdpo_offpolicy.networks(config, env.action_size)[0], config.min_std
  raise ValueError(f"agent {agent!r} has no tanh-Gaussian policy to build candidates from")


def parse_value(text: str) -> Any:
  """'1e-3' -> 0.001, '(64, 64)' -> (64, 64), 'True' -> True, 'relu' -> 'relu'."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_overrides(pairs: list[str], allowed: dict[str, Any], what: str) -> dict[str, Any]:
  """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'}, checking names against `allowed` (name -> default).

  Raises ValueError naming the bad entry and listing the accepted names.
  """
  out = {}
  for pair in pairs:
    name, sep, text = pair.partition("=")
    name = name.strip()
    if not sep:
      raise ValueError(f"{what}: expected key=value, got {pair!r}")
    if allowed and name not in allowed:
      raise ValueError(f"{what}: unknown key {name!r}; known: {', '.join(sorted(allowed))}")
    value = parse_value(text.strip())
    default = allowed.get(name)
    if isinstance(default, bool) and not isinstance(value, bool):
      raise ValueError(f"{what}: {name} takes True or False, got {text!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
      if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{what}: {name} takes a number, got {text!r}")
      value = type(default)(value) if isinstance(default, float) else value
    if isinstance(default, tuple):
      value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    out[name] = value
  return out


def make_config(agent: str, overrides: list[str]):
  """The agent's default config with `key=value` overrides applied (validated)."""
  if agent not in AGENTS:
    raise ValueError(f"unknown agent {agent!r}; known agents: {', '.join(sorted(AGENTS))}")
  return config_from_overrides(AGENTS[agent][0], overrides, f"--override for {agent}")


def field_defaults(config_cls: type) -> dict[str, Any]:
  """{field name: default} of a config dataclass."""
  return {f.name: getattr(config_cls(), f.name) for f in dataclasses.fields(config_cls)}


def config_from_overrides(config_cls: type, overrides: list[str], what: str,
                          fixed: Optional[dict] = None):
  """config_cls(**fixed, **parsed `key=value` overrides), validated; the fields in `fixed`
  cannot be overridden. Raises ValueError naming the bad entry (`what` says where)."""
  fixed = dict(fixed or {})
  for pair in overrides:
    name = pair.partition("=")[0].strip()
    if name in fixed:
      raise ValueError(f"{what}: cannot set {name} (fixed to {fixed[name]} here)")
  defaults = {k: v for k, v in field_defaults(config_cls).items() if k not in fixed}
  config = config_cls(**fixed, **parse_overrides(overrides, defaults, what))
  try:
    config.validate()
  except TypeError as e:    # a None-default field given a value of the wrong kind
    raise ValueError(f"{what}: {e}") from e
  return config
