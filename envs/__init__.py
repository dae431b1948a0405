"""One functional env API over Brax, MuJoCo Playground's DM Control Suite and dm_control.

    env = envs.make("dmc/cartpole_balance")
    state = env.reset(key)            # EnvState(obs, reward, terminated, truncated, info, sim)
    state = env.step(state, action)   # action in [-1, 1]^env.action_size
"""

from envs.episodes import episode_returns, native_episode_returns
from envs.registry import EnvError, make, names
from envs.types import Env, EnvState, Wrapper
from envs.wrappers import AutoReset, EpisodeLimit, batch_reset, batch_step

__all__ = ["Env", "EnvError", "EnvState", "Wrapper", "AutoReset", "EpisodeLimit",
           "batch_reset", "batch_step", "episode_returns", "make", "names",
           "native_episode_returns"]
