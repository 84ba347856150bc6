"""Atari on the host: ale-py's vectorised ALE, preprocessed as in the paper.

`Atari(env_config)` describes a game (actions, frame shape, time limit) and makes
`AtariGames`, B emulators stepped together by `ale_py.AtariVectorEnv` (C++
threads; frame skip, max-pooling and resizing happen there, so no OpenCV).

AtariVectorEnv's defaults are DQN's, not Gymnasium's v5: it clips rewards,
presses FIRE and plays up to 30 no-ops after resets, never repeats actions and
stacks 4 84x84 gray frames. We set every one of those from the config, whose
defaults are v5's (`gymnasium.spec("ALE/<Game>-v5").kwargs`): sticky actions
0.25, minimal action set, frame skip 4, 108,000 frames (27,000 steps) per
episode, no reward clipping, no no-ops, no FIRE on reset, no termination on a
lost life. Frames come back one at a time (`stack_num=1`); the history of 32 is
ours (`muzero_jax.history`), so that replay can store single frames.

Auto-reset is ALE's "same step" mode: a step that ends an episode returns the
next episode's first frame, with the frame it ended on beside it (the bootstrap
state of a truncation).
"""

from __future__ import annotations

import os
import weakref

import numpy as np

from muzero_jax.config import Config, EnvConfig
from muzero_jax.envs.base import EnvSpec, EpisodeStats, HostEnv, HostStep, env_config

# ALE v5's sticky actions (`gymnasium.spec("ALE/<Game>-v5")`), for
# EnvConfig.sticky_action_probability None.
V5_STICKY_ACTION_PROBABILITY = 0.25


def is_atari(env_id: str) -> bool:
    """Whether `env_id` names an ALE game (`ALE/<Game>-v5`)."""
    return env_id.startswith("ALE/")


def _game(env_id: str) -> str:
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    if not env_id.endswith("-v5"):
        raise ValueError(f"env={env_id!r}: expected an ALE/<Game>-v5 id (v5's defaults are "
                         f"the ones reproduced here), e.g. 'ALE/Breakout-v5'")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(f"env={env_id!r}: not an ALE game known to ale-py "
                         f"{ale_py.__version__}; expected e.g. 'ALE/Breakout-v5' ({e})") from None
    return spec.kwargs["game"]


class AtariGames:
    """B Atari games stepped together on the host (a mutable object, not a pytree)."""

    legal_action_mask = None  # every action of the set is legal

    def __init__(self, atari: Atari, num_envs: int):
        from ale_py import AtariVectorEnv

        cfg = atari.config
        self.atari = atari
        self.num_envs = num_envs
        self._env = AtariVectorEnv(
            atari.game, num_envs,
            num_threads=min(num_envs, os.cpu_count() or 1),
            max_num_frames_per_episode=atari.max_episode_steps * cfg.frame_skip,
            repeat_action_probability=(V5_STICKY_ACTION_PROBABILITY
                                       if cfg.sticky_action_probability is None
                                       else cfg.sticky_action_probability),
            full_action_space=cfg.full_action_space,
            autoreset_mode="SameStep",
            img_height=cfg.frame_size[0], img_width=cfg.frame_size[1],
            grayscale=cfg.grayscale, stack_num=1, frameskip=cfg.frame_skip, maxpool=True,
            noop_max=cfg.noop_max, episodic_life=cfg.terminal_on_life_loss,
            reward_clipping=False, use_fire_reset=False)
        # The emulators run threads; release them with the object, not at exit.
        self._finalizer = weakref.finalize(self, self._env.close)
        self._stats = EpisodeStats(num_envs)

    def _frames(self, obs: np.ndarray) -> np.ndarray:
        obs = obs[:, 0]  # stack_num = 1
        return obs[..., None] if self.atari.config.grayscale else obs

    def reset(self, seed: int) -> np.ndarray:
        """Starts every game afresh (game b seeded with seed + b). `[B, *frame_shape]` uint8."""
        obs, _ = self._env.reset(seed=int(seed))
        self._stats.reset()
        return self._frames(obs)

    def step(self, action: np.ndarray) -> HostStep:
        """Plays `[B]` actions (auto-resetting games that end)."""
        obs, reward, terminated, truncated, info = self._env.step(
            np.asarray(action, np.int32))
        frame = self._frames(obs)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool) & ~terminated
        done = terminated | truncated
        final_frame = frame
        if done.any():  # ALE adds the frames the episodes ended on, `[B]` like `obs`
            final_frame = np.where(done.reshape((-1,) + (1,) * (frame.ndim - 1)),
                                   self._frames(info["final_obs"]), frame)
        episode_return, episode_length = self._stats.step(reward, done)
        return HostStep(observation=frame, final_observation=final_frame, reward=reward,
                        terminated=terminated, truncated=truncated,
                        episode_return=episode_return, episode_length=episode_length)

    def close(self) -> None:
        self._finalizer()


class Atari(HostEnv):
    """An ALE game preprocessed as its `EnvConfig` says; makes `AtariGames`.

    Attributes:
      game: the ROM name (e.g. "breakout").
      num_actions: A (the minimal action set unless EnvConfig.full_action_space).
      frame_shape: `(height, width, C)`, C = 1 (grayscale) or 3.
      max_episode_steps: the time limit in agent steps (default 27,000 as v5).
      spec: the protocol's description: uint8 frames, no known reward bound (rewards
        are not clipped), evaluated on fresh emulators (no Gymnasium twin: v5's
        preprocessing is not ours).
    """

    def __init__(self, config: EnvConfig | Config):
        self.config = config = env_config(config)
        self.game = _game(config.id)
        self.max_episode_steps = int(config.max_episode_steps or 27_000)
        self.frame_shape = (*config.frame_size, 1 if config.grayscale else 3)
        probe = AtariGames(self, 1)
        self.num_actions = int(probe._env.single_action_space.n)
        probe.close()
        self.spec = EnvSpec(env_id=config.id, observation_shape=self.frame_shape,
                            observation_dtype="uint8", num_actions=self.num_actions,
                            max_episode_steps=self.max_episode_steps)

    def make(self, num_envs: int) -> AtariGames:
        """`num_envs` games (call `reset` on them before stepping)."""
        return AtariGames(self, num_envs)
