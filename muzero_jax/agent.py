"""The Agent: one object holding the model, search, replay layout and learner of a config.

    agent = muzero_jax.Agent(muzero_jax.cartpole())
    state = agent.init(jax.random.key(0))        # TrainState: params, opt_state, step
    out = agent.act(state, key, obs)             # jitted search; out.action
    state, metrics = agent.learn(state, batch)   # jitted optimizer step
    state, buffer, metrics = agent.update(state, buffer, key)  # U steps in one lax.scan

Everything it returns is a pure function of its arguments; the object only
keeps the static parts (shapes, the network, the optimizer) and the compiled
programs, so it is safe to call from a notebook in any order.

The pipeline is `pieces.make_pieces`'s (init, the actor's reset and rollout, the replay
layout, the batch pipeline, the update): `loop.make_train` composes them into the
compiled training program, and the Agent's methods are jitted calls of the same pieces.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mctx

from muzero_jax import batch as batch_lib
from muzero_jax import envs, replay, selfplay
from muzero_jax.config import Config
from muzero_jax.learner import Batch, TrainState
from muzero_jax.pieces import make_pieces
from muzero_jax.search import Exploration, SearchOutput


class Agent:
    """MuZero for one configuration and environment.

    Args:
      config: the configuration (validated here, before anything compiles).
      env: the environment, any realisation of `muzero_jax.envs`'s protocol (a
        `JaxEnv` or a `HostEnv`); default `envs.make(config)`, from `config.env.id`'s
        id. The same `reset` / `rollout` / `add` / `update` calls drive either.
    """

    def __init__(self, config: Config, env: envs.Env | None = None):
        pieces = make_pieces(config, env)
        self.pieces = pieces
        self.config, self.env, self.spec = config, pieces.env, pieces.spec
        self.num_actions = pieces.spec.num_actions
        self.observation_shape = pieces.observation_shape
        self.stored_observation_shape = pieces.spec.observation_shape
        self.reward_limit = pieces.reward_limit
        self.model, self.searcher, self.learner = pieces.model, pieces.searcher, pieces.learner
        self.actor, self.host = pieces.actor, pieces.host
        self.sample_batch = pieces.sample_batch
        self.training_exploration = Exploration.training(config)

        self._act = jax.jit(self._act_impl)
        self._learn = jax.jit(self.learner.learn)
        self._add = jax.jit(replay.add, donate_argnums=0)
        self._update = jax.jit(self.pieces.update, donate_argnums=(0, 1))
        self._make_batch = jax.jit(self._make_batch_impl)
        self._search_tree = jax.jit(self.searcher.search_tree)

    # --- state -------------------------------------------------------------------
    def init(self, key: chex.PRNGKey) -> TrainState:
        """Fresh parameters and optimizer state."""
        return self.pieces.init(key)

    def init_replay(self) -> replay.ReplayBuffer:
        """An empty buffer with one stream per self-play environment."""
        return self.pieces.init_replay()

    def reset(self, key: chex.PRNGKey,
              num_envs: int | None = None) -> envs.EnvState | selfplay.HostEnvState:
        """`[num_envs]` fresh environments (default: config.acting.num_envs).

        Host envs are new instances each call, seeded from `key`, so that an
        evaluation never disturbs the ones self-play is in the middle of.
        """
        return self.actor.reset(key, num_envs or self.config.acting.num_envs)

    # --- acting ------------------------------------------------------------------
    def _act_impl(self, params, key, obs, exploration, invalid_actions, embedding=None):
        return self.searcher(params, key, obs, exploration, invalid_actions, embedding)

    def act(self, state: TrainState, key: chex.PRNGKey, obs: chex.Array, *,
            greedy: bool = False, invalid_actions: chex.Array | None = None,
            embedding=None) -> SearchOutput:
        """Searches from `obs` and picks actions (jitted).

        Args:
          state: the learner state (its params are used).
          key: PRNG key (consumed).
          obs: `[B, *obs_shape]`, or one observation `[*obs_shape]` (uint8 frames
            are scaled to [0, 1]; with a frame history, obs is the stack of planes).
          greedy: act greedily (no noise, temperature 0), as in evaluation.
          invalid_actions: optional `[B, A]` (or `[A]`) bool, True where illegal.
          embedding: AlphaZero mode: the `[B]` env states (`EnvState.inner`) searched from.

        Returns:
          `SearchOutput` (`[B]` or unbatched, matching `obs`).
        """
        obs = envs.to_float(obs)
        single = obs.shape == self.observation_shape
        if single:
            obs = obs[None]
            if invalid_actions is not None:
                invalid_actions = jnp.asarray(invalid_actions)[None]
            if embedding is not None:
                embedding = jax.tree.map(lambda x: jnp.asarray(x)[None], embedding)
        if obs.shape[1:] != self.observation_shape:
            raise ValueError(f"obs has shape {obs.shape}; expected [B, "
                             f"{', '.join(map(str, self.observation_shape))}] or "
                             f"{self.observation_shape}")
        exploration = Exploration.greedy() if greedy else self.training_exploration
        out = self._act(state.params, key, obs, exploration, invalid_actions, embedding)
        return jax.tree.map(lambda x: x[0], out) if single else out

    def search_tree(self, state: TrainState, key: chex.PRNGKey, obs: chex.Array, *,
                    greedy: bool = True, invalid_actions: chex.Array | None = None,
                    embedding=None) -> mctx.Tree:
        """The whole mctx search tree from each observation `[B, *obs_shape]` (jitted).

        For looking at one decision (see `treeviz`); acting uses `act`.
        `invalid_actions` (`[B, A]` bool) and `embedding` (AlphaZero mode: the `[B]` env
        states) are as for `act`.
        """
        exploration = Exploration.greedy() if greedy else self.training_exploration
        return self._search_tree(state.params, key, envs.to_float(obs), exploration,
                                 invalid_actions, embedding)

    def rollout(self, state: TrainState, env_state: envs.EnvState | selfplay.HostEnvState,
                key: chex.PRNGKey, *, greedy: bool = False, num_steps: int | None = None,
                exploration: Exploration | None = None):
        """Self-play for `num_steps` (default rollout_length) steps of `[B]` envs.

        JAX envs: one jitted program. Host envs: a Python loop over the steps, one
        jitted batched search per step (`selfplay.HostActor`).
        `exploration` (e.g. `Exploration.scheduled(config, progress)`) overrides the
        config's training knobs; `greedy` plays without noise at temperature 0.
        Returns the new env states and a `[B, T]` `selfplay.Trajectory`.
        """
        if exploration is None:
            exploration = Exploration.greedy() if greedy else self.training_exploration
        elif greedy:
            raise ValueError("pass either greedy=True or an exploration, not both")
        num_steps = num_steps or self.config.acting.rollout_length
        return self.actor.rollout(state.params, env_state, key, exploration, num_steps)

    # --- learning ----------------------------------------------------------------
    def add(self, buffer: replay.ReplayBuffer,
            trajectory: selfplay.Trajectory) -> replay.ReplayBuffer:
        """Appends a `[B, T]` trajectory to replay (jitted; `buffer` is donated)."""
        return self._add(buffer, trajectory)

    def learn(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        """One optimizer step on `batch` (jitted). Returns the new state and scalar metrics."""
        return self._learn(state, batch)

    def make_batch(self, buffer: replay.ReplayBuffer, key: chex.PRNGKey,
                   state: TrainState | None = None) -> Batch:
        """Samples `batch_size` windows from replay and computes their targets (jitted).

        `state` is needed when the config reanalyzes or has a target network (its
        parameters give the fresh values and policies).

        Returns a `Batch`: observation `[N, *obs_shape]`, targets for K steps, weight `[N]`.
        """
        cfg = self.config
        if state is None and (cfg.learner.use_target_network or cfg.num_reanalyzed):
            raise ValueError("this config reanalyzes or uses a target network: pass the "
                             "TrainState, make_batch(buffer, key, state)")
        return self._make_batch(buffer, key, state)

    def _make_batch_impl(self, buffer, key, state):
        # The target network's values are computed here rather than read from replay's
        # cache, which only `update` keeps up to date.
        return self.sample_batch(state, buffer.replace(value_cache=None), key)[0]

    def priority_beta(self, step: chex.Array) -> chex.Array:
        """The importance-weight exponent at learner `step`, annealed linearly to 1."""
        return batch_lib.priority_beta(self.config.replay, step)

    def update(self, state: TrainState, buffer: replay.ReplayBuffer, key: chex.PRNGKey
               ) -> tuple[TrainState, replay.ReplayBuffer, dict]:
        """`updates_per_iteration` learner steps in one compiled `lax.scan` (jitted).

        Each step samples a batch (by priority when priority_alpha > 0),
        reanalyzes its share, computes targets, takes an optimizer step, writes
        the fresh priorities back and updates the target network.
        `state` and `buffer` are donated: use the returned ones. Metrics are
        means over the steps, except `priority_max` (the max) and
        `importance_weight_min` (the min).
        """
        return self._update(state, buffer, key)

    def ready_to_learn(self, buffer: replay.ReplayBuffer) -> bool:
        """Whether replay holds min_replay_size positions and a full window per stream."""
        cfg = self.config
        return bool(batch_lib.ready_to_learn(buffer, min_size=cfg.replay.min_size,
                                             window_length=cfg.loss.window_length,
                                             history_length=cfg.env.history_length))
