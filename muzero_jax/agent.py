"""The Agent: one object holding the model, search, replay layout and learner of a config.

    agent = muzero_jax.Agent(muzero_jax.cartpole())
    state = agent.init(jax.random.key(0))        # TrainState: params, opt_state, step
    out = agent.act(state, key, obs)             # jitted search; out.action
    state, metrics = agent.learn(state, batch)   # jitted optimizer step
    state, buffer, metrics = agent.update(state, buffer, key)  # U steps in one lax.scan

Everything it returns is a pure function of its arguments; the object only
keeps the static parts (shapes, the network, the optimizer) and the compiled
programs, so it is safe to call from a notebook in any order.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mctx

from muzero_jax import envs, history, reanalyze, replay, selfplay
from muzero_jax.config import Config, ConfigError, validate
from muzero_jax.envs import atari
from muzero_jax.learner import Batch, Learner, TrainState
from muzero_jax.networks import Model
from muzero_jax.search import Exploration, Searcher, SearchOutput
from muzero_jax.targets import window_targets


class Agent:
    """MuZero for one configuration and environment.

    Args:
      config: the configuration (validated here, before anything compiles).
      env: the environment: a JAX env (`envs.make(config.env)` by default) or, for
        `ALE/<Game>-v5` ids, the host-driven `envs.atari.Atari(config)`, whose
        observations are the stacks of `config.history_length` frames and actions.
        Either way the same `reset` / `rollout` / `add` / `update` calls drive it.
    """

    def __init__(self, config: Config, env: envs.JaxEnv | atari.Atari | None = None):
        validate(config)
        if env is None:
            env = (atari.Atari(config) if atari.is_atari(config.env)
                   else envs.make(config.env, config.max_episode_steps))
        self.host = isinstance(env, atari.Atari)
        if self.host:
            if config.history_length < 1:
                raise ConfigError(f"history_length={config.history_length}: {config.env!r} "
                                  f"is played from frames; expected >= 1 (paper: 32)")
            # What replay stores per position, and what h sees (the stack).
            self.stored_observation_shape = env.frame_shape
            observation_shape = history.planes_shape(env.frame_shape, config.history_length)
        else:
            if config.history_length != 0:
                raise ConfigError(f"history_length={config.history_length}: frame histories "
                                  f"are for ALE games, not {config.env!r}; expected 0")
            self.stored_observation_shape = observation_shape = env.observation_shape
        validate(config, max_abs_reward=env.max_abs_reward,
                 observation_shape=observation_shape, num_actions=env.num_actions)
        self.config = config
        self.env = env
        self.num_actions = env.num_actions
        self.observation_shape = observation_shape
        self.model = Model(config, env.num_actions, observation_shape)
        self.searcher = Searcher(self.model, config)
        self.learner = Learner(self.model, config)
        self.training_exploration = Exploration.training(config)

        self._act = jax.jit(self._act_impl)
        self._rollout = jax.jit(self._rollout_impl, static_argnames="num_steps")
        self._learn = jax.jit(self.learner.learn)
        self._add = jax.jit(replay.add, donate_argnums=0)
        self._update = jax.jit(self._update_impl, donate_argnums=(0, 1))
        self._make_batch = jax.jit(self._make_batch_impl)
        if self.host:
            self._host_search = jax.jit(self._host_search_impl)
            self._push = jax.jit(history.push)
            self._final_value = jax.jit(self._final_value_impl)
        self._search_tree = jax.jit(self.searcher.search_tree)

    # --- state -------------------------------------------------------------------
    def init(self, key: chex.PRNGKey) -> TrainState:
        """Fresh parameters and optimizer state."""
        return self.learner.init(self.model.init(key))

    def init_replay(self) -> replay.ReplayBuffer:
        """An empty buffer with one stream per self-play environment."""
        cfg = self.config
        # Frames are stored as the emulator gives them: one uint8 frame per position.
        dtype = jnp.uint8 if self.host else jnp.float32
        return replay.init(cfg.num_envs, cfg.replay_length, self.stored_observation_shape,
                           self.num_actions, observation_dtype=dtype,
                           max_episode_steps=self.env.max_episode_steps)

    def reset(self, key: chex.PRNGKey,
              num_envs: int | None = None) -> envs.EnvState | selfplay.HostEnvState:
        """`[num_envs]` fresh environments (default: config.num_envs).

        Host games (Atari) are new emulators each call, seeded from `key`, so that an
        evaluation never disturbs the games self-play is in the middle of.
        """
        num_envs = num_envs or self.config.num_envs
        if self.host:
            seed = int(jax.random.randint(key, (), 0, 2**31 - 1 - num_envs))
            return selfplay.host_reset(self.env.make(num_envs), seed,
                                       self.config.history_length)
        return selfplay.reset(self.env, key, num_envs)

    # --- acting ------------------------------------------------------------------
    def _act_impl(self, params, key, obs, exploration, invalid_actions):
        return self.searcher(params, key, obs, exploration, invalid_actions)

    def act(self, state: TrainState, key: chex.PRNGKey, obs: chex.Array, *,
            greedy: bool = False, invalid_actions: chex.Array | None = None) -> SearchOutput:
        """Searches from `obs` and picks actions (jitted).

        Args:
          state: the learner state (its params are used).
          key: PRNG key (consumed).
          obs: `[B, *obs_shape]`, or one observation `[*obs_shape]`.
          greedy: act greedily (no noise, temperature 0), as in evaluation.
          invalid_actions: optional `[B, A]` (or `[A]`) bool, True where illegal.

        Returns:
          `SearchOutput` (`[B]` or unbatched, matching `obs`).
        """
        obs = jnp.asarray(obs, jnp.float32)
        single = obs.shape == self.observation_shape
        if single:
            obs = obs[None]
            if invalid_actions is not None:
                invalid_actions = jnp.asarray(invalid_actions)[None]
        if obs.shape[1:] != self.observation_shape:
            raise ValueError(f"obs has shape {obs.shape}; expected [B, "
                             f"{', '.join(map(str, self.observation_shape))}] or "
                             f"{self.observation_shape}")
        exploration = Exploration.greedy() if greedy else self.training_exploration
        out = self._act(state.params, key, obs, exploration, invalid_actions)
        return jax.tree.map(lambda x: x[0], out) if single else out

    def search_tree(self, state: TrainState, key: chex.PRNGKey, obs: chex.Array, *,
                    greedy: bool = True) -> mctx.Tree:
        """The whole mctx search tree from each observation `[B, *obs_shape]` (jitted).

        For looking at one decision (see `treeviz`); acting uses `act`.
        """
        exploration = Exploration.greedy() if greedy else self.training_exploration
        return self._search_tree(state.params, key, jnp.asarray(obs, jnp.float32), exploration)

    def _rollout_impl(self, params, env_state, key, exploration, num_steps):
        return selfplay.rollout(self.env, self.searcher, params, env_state, key,
                                exploration, num_steps)

    def _host_search_impl(self, params, key, hist, exploration):
        obs = history.history_planes(hist, self.num_actions)
        return self.searcher(params, key, obs, exploration)

    def _final_value_impl(self, params, hist, final_frame, action):
        hist = history.push(hist, final_frame, action, jnp.zeros(action.shape, bool))
        obs = history.history_planes(hist, self.num_actions)
        return self.model.initial_inference(params, obs).value

    def rollout(self, state: TrainState, env_state: envs.EnvState | selfplay.HostEnvState,
                key: chex.PRNGKey, *, greedy: bool = False, num_steps: int | None = None,
                exploration: Exploration | None = None):
        """Self-play for `num_steps` (default rollout_length) steps of `[B]` envs.

        JAX envs: one jitted program. Host games: a Python loop over the steps, one
        jitted batched search per step (`selfplay.host_rollout`).
        `exploration` (e.g. `Exploration.scheduled(config, progress)`) overrides the
        config's training knobs; `greedy` plays without noise at temperature 0.
        Returns the new env states and a `[B, T]` `selfplay.Trajectory`.
        """
        if exploration is None:
            exploration = Exploration.greedy() if greedy else self.training_exploration
        elif greedy:
            raise ValueError("pass either greedy=True or an exploration, not both")
        num_steps = num_steps or self.config.rollout_length
        if self.host:
            params = state.params
            return selfplay.host_rollout(
                env_state, key, num_steps,
                search=lambda k, h: self._host_search(params, k, h, exploration),
                push=self._push,
                final_value=lambda h, f, a: self._final_value(params, h, f, a))
        return self._rollout(state.params, env_state, key, exploration, num_steps=num_steps)

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
        if state is None and (cfg.use_target_network or cfg.num_reanalyzed):
            raise ValueError("this config reanalyzes or uses a target network: pass the "
                             "TrainState, make_batch(buffer, key, state)")
        return self._make_batch(buffer, key, state)

    def _make_batch_impl(self, buffer, key, state):
        return self._sample_batch(state, buffer, key)[0]

    def priority_beta(self, step: chex.Array) -> chex.Array:
        """The importance-weight exponent at learner `step`, annealed linearly to 1."""
        cfg = self.config
        if cfg.priority_beta_anneal_steps == 0:
            return jnp.float32(cfg.priority_beta)
        progress = jnp.minimum(step / cfg.priority_beta_anneal_steps, 1.0)
        return cfg.priority_beta + (1.0 - cfg.priority_beta) * progress

    def _sample_batch(self, state, buffer, key):
        """Sample -> Reanalyze -> targets. Returns the batch, its windows and statistics."""
        cfg = self.config
        # Split only when a search needs a key, so runs without Reanalyze draw the
        # same samples as before it existed.
        sample_key, search_key = (jax.random.split(key) if cfg.num_reanalyzed_policies
                                  else (key, None))
        beta = self.priority_beta(state.step) if state is not None else cfg.priority_beta
        window = replay.sample(buffer, sample_key, cfg.batch_size, cfg.window_length,
                               priority_alpha=cfg.priority_alpha, priority_beta=beta,
                               history_length=cfg.history_length)
        # A target network gives every window's bootstrap values (at time limits
        # too); Reanalyze alone refreshes its share with the latest parameters.
        num_values = cfg.batch_size if cfg.use_target_network else cfg.num_reanalyzed
        num_policies = cfg.num_reanalyzed_policies
        bootstrap, policy, stats = None, window.search_policy, {}
        if num_values:
            def value_fn(obs):
                params = (state.params if state.target_params is None
                          else state.target_params)
                return self.model.initial_inference(params, obs).value

            def policy_fn(obs):
                return self.searcher(state.params, search_key, obs,
                                     Exploration.greedy()).search_policy

            bootstrap, final_value, policy, stats = reanalyze.reanalyze(
                buffer, window, value_fn=value_fn, policy_fn=policy_fn,
                num_values=num_values, num_policies=num_policies,
                td_steps=cfg.td_steps, unroll_steps=cfg.unroll_steps,
                history_length=cfg.history_length)
            window = window.replace(final_value=final_value)
        targets = window_targets(window.replace(search_policy=policy), discount=cfg.discount,
                                 td_steps=cfg.td_steps, unroll_steps=cfg.unroll_steps,
                                 bootstrap_value=bootstrap)
        batch = Batch(observation=window.observation, targets=targets, weight=window.weight)
        return batch, window, stats

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

    def _update_impl(self, state, buffer, key):
        cfg = self.config

        def step(carry, key):
            state, buffer = carry
            batch, window, stats = self._sample_batch(state, buffer, key)
            state, metrics, priority = self.learner.step(state, batch)
            if cfg.priority_alpha > 0:
                buffer = replay.update_priorities(buffer, window.stream, window.position,
                                                  priority)
            metrics = dict(metrics, **stats, priority_mean=jnp.mean(priority),
                           priority_max=jnp.max(priority),
                           importance_weight_min=jnp.min(window.weight),
                           importance_weight_mean=jnp.mean(window.weight))
            return (state, buffer), metrics

        keys = jax.random.split(key, cfg.updates_per_iteration)
        (state, buffer), metrics = jax.lax.scan(step, (state, buffer), keys)
        reduce = {"priority_max": jnp.max, "importance_weight_min": jnp.min}
        metrics = {k: reduce.get(k, jnp.mean)(v) for k, v in metrics.items()}
        return state, buffer, metrics

    def ready_to_learn(self, buffer: replay.ReplayBuffer) -> bool:
        """Whether replay holds min_replay_size positions and a full window per stream."""
        count = int(buffer.count)
        return (count * buffer.num_streams >= self.config.min_replay_size
                and int(replay.num_windows(buffer, self.config.window_length,
                                           self.config.history_length)) > 0)


