"""Self-play: B environments stepped T times, searching at every step.

An actor drives one realisation of the env protocol (`muzero_jax.envs.base`):

- `JaxActor` (JAX-native envs): the rollout is one jitted `lax.scan` over time
  whose body searches the whole batch at once and steps the vmapped environment.
- `HostActor` (Gymnasium, ALE): a Python loop over the T steps that calls one
  jitted batched search per step; with `history_length` H > 0 (frames) it keeps
  each env's last H frames and actions on the device (`muzero_jax.history`).

`make_actor` picks one from the env; both return a `Trajectory`, the one format
replay accepts (see it for the row layout), and both mask illegal actions at the
root where the env reports legal-action masks. While training, both may play runs
of one action instead of the search's choices (`explore_actions`:
`ActingConfig.exploration_repeat_probability`, `exploration_epsilon`): runs reach
states that independent draws rarely do.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import extensions as extensions_lib
from muzero_jax import history as history_lib
from muzero_jax import sampled as sampled_lib
from muzero_jax.config import Config, ConfigError
from muzero_jax.envs import EnvState, HostEnv, HostEnvs, JaxEnv, to_float
from muzero_jax.networks import Params
from muzero_jax.search import Exploration, Searcher


@chex.dataclass(frozen=True)
class Trajectory:
    """T steps of B environment streams, batch axis first.

    Row t of a stream holds the observation acted on, what the search said
    there, the action taken and what the environment answered. Episodes follow
    each other in a stream: after a row with `terminated` or `truncated`, the next
    row is the next episode's first observation.

    observation: `[B, T, *obs_shape]` the observation searched at step t, as the env
      gives it (uint8 frames stay uint8); with a frame history, only its newest
      frame (replay rebuilds the stack from consecutive rows).
    action: `[B, T]` int32, the action taken.
    reward: `[B, T]` float32, the reward received for it.
    terminated: `[B, T]` bool, the episode reached a terminal state after it.
    truncated: `[B, T]` bool, the episode hit its time limit after it.
    search_policy: `[B, T, A]` the search's policy target.
    root_value: `[B, T]` the search's root value.
    final_value: `[B, T]` the acting network's value of the observation the
      episode was truncated on (0 elsewhere): the bootstrap value at a time limit
      when neither a target network nor Reanalyze gives a fresh one.
    final_observation: `[B, T, *obs_shape]` the observation the step reached,
      before any reset (with a frame history: its newest frame); replay keeps it
      only where the episode was truncated, to refresh the value there.
    episode_return: `[B, T]` the finished episode's return where it ended, else 0.
    episode_length: `[B, T]` int32, likewise its length.
    extra: name -> `[B, T, ...]`, the fields the active extensions record
      (`muzero_jax.extensions`); empty without any.
    """

    observation: chex.Array
    action: chex.Array
    reward: chex.Array
    terminated: chex.Array
    truncated: chex.Array
    search_policy: chex.Array
    root_value: chex.Array
    final_value: chex.Array
    final_observation: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array
    extra: dict[str, chex.Array] = dataclasses.field(default_factory=dict)


def _invalid(legal_action_mask: chex.Array | None) -> chex.Array | None:
    return None if legal_action_mask is None else ~jnp.asarray(legal_action_mask, bool)


class JaxActor:
    """Self-play on a JAX env: reset and rollout are pure and jitted.

    Args:
      env: the single-env JAX environment (vmapped here).
      searcher: the batched search.
      extensions: the active extensions (`muzero_jax.extensions.active`), whose fields
        each step records.
    """

    host = False

    def __init__(self, env: JaxEnv, searcher: Searcher, extensions: tuple = ()):
        self.env = env
        self.spec = env.spec
        self.searcher = searcher
        self.extensions = tuple(extensions)
        self._rollout = jax.jit(self.rollout_fn, static_argnames="num_steps")

    def reset(self, key: chex.PRNGKey, num_envs: int) -> EnvState:
        """`[num_envs]` fresh environments. key: consumed."""
        return jax.vmap(self.env.reset)(jax.random.split(key, num_envs))

    def rollout(self, params: Params, env_state: EnvState, key: chex.PRNGKey,
                exploration: Exploration, num_steps: int) -> tuple[EnvState, Trajectory]:
        """`rollout_fn`, jitted."""
        return self._rollout(params, env_state, key, exploration, num_steps=num_steps)

    def rollout_fn(self, params: Params, env_state: EnvState, key: chex.PRNGKey,
                   exploration: Exploration, num_steps: int) -> tuple[EnvState, Trajectory]:
        """Runs `num_steps` steps of search-and-act on every environment (pure).

        Args:
          params: network parameters.
          env_state: `[B]` environment states.
          key: PRNG key (consumed).
          exploration: acting knobs (training or greedy).
          num_steps: T (static).

        Returns:
          The `[B]` environment states after T steps, and the `[B, T]` trajectory.
        """
        def step(carry, step_key):
            return self._step(params, exploration, carry, step_key)

        no_action = jnp.full(env_state.step_count.shape, -1, jnp.int32)
        (env_state, _), rows = jax.lax.scan(step, (env_state, no_action),
                                            jax.random.split(key, num_steps))
        return env_state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)

    def _step(self, params, exploration, carry, step_key):
        """One step of `rollout_fn`'s scan: search, act, record, step the envs."""
        env_state, previous = carry
        config = self.searcher.config
        observation = env_state.observation
        explores = _explores(config)
        if explores:  # split only then, so that runs without it keep their keys
            step_key, explore_key = jax.random.split(step_key)
        step_key, extension_keys = extensions_lib.split_keys(self.extensions, step_key)
        out = self.searcher(params, step_key, to_float(observation), exploration,
                            _invalid(env_state.legal_action_mask)
                            if self.spec.legal_actions else None, env_state.inner)
        action = out.action
        sample_moves = config.acting.sample_moves
        if sample_moves is not None:  # AlphaZero: sample early moves, then the best
            action = jnp.where(env_state.step_count < sample_moves, action,
                               jnp.argmax(out.search_policy, axis=-1).astype(jnp.int32))
        if explores:
            action = explore_actions(explore_key, action, previous, exploration,
                                     explore_mask(out, env_state.legal_action_mask),
                                     ply=env_state.step_count)
        extra = extensions_lib.record(self.extensions, self.env, extension_keys, env_state,
                                      out, action)
        env_state, env_out = jax.vmap(self.env.step)(
            env_state, sampled_lib.played_action(out.root_actions, action))
        row = Trajectory(
            observation=observation, action=action, reward=env_out.reward,
            terminated=env_out.terminated, truncated=env_out.truncated,
            search_policy=out.search_policy, root_value=out.root_value,
            final_value=self._final_values(params, env_out),
            final_observation=env_out.final_observation,
            episode_return=env_out.episode_return, episode_length=env_out.episode_length,
            extra=extra)
        previous = jnp.where(env_out.terminated | env_out.truncated, -1, action)
        return (env_state, previous), row

    def _final_values(self, params, env_out) -> jax.Array:
        """`[B]` the acting network's values of the observations time limits cut
        episodes on, 0 elsewhere."""
        # The time limit is rare: only pay for the extra network call when it hits.
        return jax.lax.cond(
            jnp.any(env_out.truncated),
            lambda: jnp.where(env_out.truncated,
                              self.searcher.model.initial_inference(
                                  params, to_float(env_out.final_observation)).value,
                              0.0),
            lambda: jnp.zeros_like(env_out.reward))


def explore_mask(out, legal_action_mask: chex.Array) -> chex.Array:
    """`[B, A]` the children `explore_actions` may pick among: the env's legal actions,
    or with sampled search the K samples (all legal; enumerated: the env's actions)."""
    if out.root_actions is None or out.search_policy.shape == legal_action_mask.shape:
        return legal_action_mask
    return jnp.ones(out.search_policy.shape, bool)


def _explores(config: Config) -> bool:
    acting = config.acting
    return (acting.exploration_repeat_probability > 0 or acting.exploration_epsilon > 0
            or acting.random_opening_plies > 0)


def explore_actions(key: chex.PRNGKey, action: chex.Array, previous: chex.Array,
                    exploration: Exploration, legal_action_mask: chex.Array,
                    ply: chex.Array | None = None) -> jax.Array:
    """`[B]` actions played while training, from the search's `[B]` int32 `action`.

    Each env repeats its `previous` action with chance `exploration.repeat_probability`
    (where it is still legal); otherwise it plays a uniformly random legal action with
    chance `exploration.epsilon`, else the search's. So runs of one action have mean
    length 1 / (1 - repeat_probability), and a share epsilon of them start from a
    random action even once the search has settled on one (temporally extended
    epsilon-greedy, Dabney et al. 2021). The policy target stays the search's: only
    the action played (and stored) changes.

    Args:
      key: PRNG key (consumed).
      action: `[B]` int32, the search's actions.
      previous: `[B]` int32, each env's action on the step before, or -1 where there
        is none (a rollout's first step, an episode's first step).
      exploration: its `repeat_probability` and `epsilon` (0 for both: `action`).
      legal_action_mask: `[B, A]` bool, True where an action is legal now.
      ply: `[B]` int32, each env's plies played in its game so far; where it is below
        `exploration.opening_plies` the random legal action is played whatever else
        (None: no opening rule, as on the host).
    """
    repeat_key, random_key, choice_key = jax.random.split(key, 3)
    batch = action.shape[0]
    legal_action_mask = jnp.asarray(legal_action_mask, bool)
    num_actions = legal_action_mask.shape[-1]
    previous_legal = jnp.take_along_axis(
        legal_action_mask, jnp.clip(previous, 0, num_actions - 1)[:, None], axis=-1)[:, 0]
    repeat = ((jax.random.uniform(repeat_key, (batch,)) < exploration.repeat_probability)
              & (previous >= 0) & previous_legal)
    random_action = jax.random.categorical(
        choice_key, jnp.where(legal_action_mask, 0.0, -jnp.inf), axis=-1)
    explore = jax.random.uniform(random_key, (batch,)) < exploration.epsilon
    played = jnp.where(explore, random_action, action)
    played = jnp.where(repeat, previous, played)
    if ply is not None:
        played = jnp.where(ply < exploration.opening_plies, random_action, played)
    return played.astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class HostEnvState:
    """B host environments and what self-play keeps of them.

    envs: the environments (`HostEnvs`): mutable host objects, stepped in place, so
      an older `HostEnvState` of the same envs is stale.
    observation: `[B, *obs_shape]` numpy, the observation to act on now (with a
      frame history: the newest frame).
    history: `[B, H]` `history.History` on the device (frame histories), else None.
    legal_action_mask: `[B, A]` bool numpy for `observation`, or None (all legal).
    """

    envs: HostEnvs
    observation: np.ndarray
    history: history_lib.History | None
    legal_action_mask: np.ndarray | None = None


class HostActor:
    """Self-play on host environments: a Python loop, one jitted batched search per step.

    Args:
      env: the host environment.
      searcher: the batched search.
      history_length: H > 0 stacks the last H frames and actions (frame envs only,
        checked by the Agent); 0 feeds each observation alone.
    """

    host = True

    def __init__(self, env: HostEnv, searcher: Searcher, history_length: int = 0,
                 extensions: tuple = ()):
        self.env = env
        self.spec = env.spec
        self.searcher = searcher
        self.history_length = history_length
        self.extensions = tuple(extensions)
        self._search = jax.jit(self._search_impl)
        self._push = jax.jit(history_lib.push)
        self._final_value = jax.jit(self._final_value_impl)
        self._explore = jax.jit(explore_actions)

    def _network_input(self, hist, observation):
        if self.history_length:
            return history_lib.history_planes(hist, self.spec.num_actions)
        return to_float(observation)

    def _search_impl(self, params, key, hist, observation, exploration, invalid_actions):
        obs = self._network_input(hist, observation)
        return self.searcher(params, key, obs, exploration, invalid_actions)

    def _final_value_impl(self, params, hist, final_observation, action):
        if self.history_length:
            hist = history_lib.push(hist, final_observation, action,
                                    jnp.zeros(action.shape, bool))
        obs = self._network_input(hist, final_observation)
        return self.searcher.model.initial_inference(params, obs).value

    def reset(self, key: chex.PRNGKey, num_envs: int) -> HostEnvState:
        """`[num_envs]` new environments, seeded from `key`.

        New envs each call, so that an evaluation never disturbs the envs self-play is
        in the middle of.
        """
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1 - num_envs))
        envs = self.env.make(num_envs)
        observation = envs.reset(seed)
        hist = (history_lib.start(jnp.asarray(observation), self.history_length)
                if self.history_length else None)
        return HostEnvState(envs=envs, observation=observation, history=hist,
                            legal_action_mask=envs.legal_action_mask)

    def rollout(self, params: Params, env_state: HostEnvState, key: chex.PRNGKey,
                exploration: Exploration, num_steps: int) -> tuple[HostEnvState, Trajectory]:
        """Runs `num_steps` steps of search-and-act on the B host environments.

        Returns the new state (same envs, stepped) and the `[B, T]` trajectory.
        """
        envs, hist = env_state.envs, env_state.history
        observation, legal = env_state.observation, env_state.legal_action_mask
        explores = _explores(self.searcher.config)
        keys = (None,) * len(self.extensions)  # host-recordable extensions take no key
        previous = np.full(envs.num_envs, -1, np.int32)
        rows = []
        for step_key in jax.random.split(key, num_steps):
            if explores:  # split only then, so that runs without it keep their keys
                step_key, explore_key = jax.random.split(step_key)
            out = self._search(params, step_key, hist, observation, exploration,
                               _invalid(legal))
            action = out.action
            if explores:
                action = self._explore(
                    explore_key, action, previous, exploration, explore_mask(
                        out, np.ones((len(previous), self.spec.num_actions), bool)
                        if legal is None else legal))
            action = np.asarray(action)
            step = envs.step(sampled_lib.host_actions(out.root_actions, action))
            done = step.terminated | step.truncated
            previous = np.where(done, -1, action).astype(np.int32)
            value = np.zeros(len(action), np.float32)
            if step.truncated.any():  # the time limit is rare: pay for the value only then
                value = np.where(step.truncated, np.asarray(
                    self._final_value(params, hist, step.final_observation, action)), 0.0)
            rows.append(dict(observation=observation, action=action, reward=step.reward,
                             terminated=step.terminated, truncated=step.truncated,
                             search_policy=out.search_policy, root_value=out.root_value,
                             final_value=value, final_observation=step.final_observation,
                             episode_return=step.episode_return,
                             episode_length=step.episode_length,
                             extra=extensions_lib.record(self.extensions, None, keys, None,
                                                         out, action)))
            if self.history_length:
                hist = self._push(hist, step.observation, action, done)
            observation, legal = step.observation, step.legal_action_mask

        def stack(values):
            if isinstance(values[0], jax.Array):
                return jnp.stack(values, axis=1)
            return np.stack(values, axis=1)

        trajectory = Trajectory(
            **{name: stack([row[name] for row in rows]) for name in rows[0] if name != "extra"},
            extra={name: stack([row["extra"][name] for row in rows])
                   for name in rows[0]["extra"]})
        return HostEnvState(envs=envs, observation=observation, history=hist,
                            legal_action_mask=legal), trajectory


Actor = JaxActor | HostActor


def make_actor(env: JaxEnv | HostEnv, searcher: Searcher, config: Config) -> Actor:
    """The actor for `env`'s realisation (the one place that tells them apart)."""
    if isinstance(env, JaxEnv):
        if config.env.history_length:
            raise ConfigError(
                f"history_length={config.env.history_length}: frame histories are kept by the "
                f"host path; {env.spec.env_id!r} is a JAX env; expected 0")
        return JaxActor(env, searcher, extensions_lib.active(config))
    if isinstance(env, HostEnv):
        chosen = extensions_lib.active(config)
        jax_only = [extension for extension in chosen if not extension.HOST]
        if jax_only:  # their fields are computed inside the JAX rollout's step
            raise ConfigError(f"extension {type(jax_only[0]).__name__}: {env.spec.env_id!r} "
                              f"is a host env, whose self-play records no such extension "
                              f"fields; expected a JAX env (jax/, gymnax/, pgx/ or mjx/ ids)")
        return HostActor(env, searcher, config.env.history_length, chosen)
    raise TypeError(f"env {env!r}: expected a muzero_jax.envs.JaxEnv or HostEnv")
