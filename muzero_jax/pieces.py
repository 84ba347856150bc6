"""The pure pieces of one config and env, built once by `make_pieces`.

    pieces = make_pieces(config)            # env, networks, search, actor, learner, update
    state = pieces.init(jax.random.key(0))  # TrainState
    buffer = pieces.init_replay()
    env_state, trajectory = pieces.actor.rollout_fn(state.params, env_state, key, x, T)
    state, buffer, metrics = pieces.update(state, buffer, key)

Each piece is built by its stage's factory from its stage's config: the network
(`networks.Model`, `config.network`), the search (`search.make_search`,
`config.search`), self-play (`selfplay.make_actor`, `config.acting`), the learner
(`learner.Learner`, `config.learner` and `config.loss`), the batch pipeline and the
U-step update (`batch.make_sample_batch`, `batch.make_update`, `config.replay`), and
the extensions the config turns on (`extensions.active`). `loop.make_train` composes
them into the compiled training program; `agent.Agent` wraps them for a notebook.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from muzero_jax import batch as batch_lib
from muzero_jax import (
    envs,
    extensions,
    history,
    replay,
    sampled,
    selfplay,
    support,
    target_cache,
)
from muzero_jax.config import Config, ConfigError, validate
from muzero_jax.learner import Learner
from muzero_jax.networks import Model
from muzero_jax.search import Exploration, Searcher
from muzero_jax.stochastic import StochasticModel


@dataclasses.dataclass(frozen=True, eq=False)
class Pieces:
    """What `make_pieces` builds for one config and env.

    config: the configuration. env: the env object. spec: its `envs.EnvSpec`.
    observation_shape: what h sees (with a frame history: the stack of planes).
    reward_limit: the largest |reward| whose targets the supports hold.
    model: `networks.Model`. searcher: the search (`search.Searcher`, over
      `search.make_search`). learner: `learner.Learner`.
    actor: self-play (`selfplay.make_actor`): `reset(key, B)` -> `[B]` env states and,
      for a JAX env, `rollout_fn(params, env_state, key, exploration, T)` -> (env states,
      `[B, T]` `selfplay.Trajectory`), the search included.
    init: key -> `TrainState`, fresh parameters and optimizer state.
    init_replay: () -> an empty `replay.ReplayBuffer`, one stream per self-play env, with
      a `replay.ValueCache` where the target network's values are cheaper kept than
      computed per window (`target_cache.pays`).
    sample_batch: (state, buffer, key, axis_name=None) -> (`learner.Batch`, its windows,
      Reanalyze statistics): sample -> Reanalyze -> targets.
    update: (state, buffer, key, axis_name=None) -> (state, buffer, scalar metrics):
      `updates_per_iteration` learner steps (sample, Reanalyze, targets, optimizer step,
      priorities) in one `lax.scan`; `axis_name`: per shard of a data axis
      (`muzero_jax.distributed`).
    """

    config: Config
    env: envs.Env
    spec: envs.EnvSpec
    observation_shape: tuple[int, ...]
    reward_limit: float
    model: Model
    searcher: Searcher
    learner: Learner
    actor: selfplay.Actor
    init: Callable
    init_replay: Callable
    sample_batch: Callable
    update: Callable

    @property
    def host(self) -> bool:
        """Whether the env steps on the host (Gymnasium, ALE) rather than inside JAX."""
        return self.actor.host

    @functools.cached_property
    def jitted_update(self) -> Callable:
        """`update` jitted once: its trace cache then serves both a program's metric
        shapes and the program's own trace of it."""
        return jax.jit(self.update)


def make_pieces(config: Config, env: envs.Env | None = None) -> Pieces:
    """Validates `config` against `env` (default `envs.make(config)`) and builds its pieces;
    raises `ConfigError` before anything compiles."""
    validate(config)
    env = env if env is not None else envs.make(config)
    spec = env.spec
    observation_shape = _observation_shape(spec, config)
    max_abs_reward = (config.env.max_abs_reward if config.env.max_abs_reward is not None
                      else spec.max_abs_reward)
    children = sampled.num_children(config, spec)
    validate(config, max_abs_reward=max_abs_reward, observation_shape=observation_shape,
             num_actions=children)
    if config.search.sampled_actions:
        model = sampled.SampledModel(config, spec, observation_shape)
    else:
        model_class = StochasticModel if config.network.chance_outcomes else Model
        model = model_class(config, spec.num_actions, observation_shape)
    searcher = Searcher(model, config, two_player=spec.two_player,
                        simulator=env if config.search.mode == "alphazero" else None)
    # The actor is the one place that tells a JAX env from a host env.
    actor = selfplay.make_actor(env, searcher, config)
    _check_env_support(config, spec, host=actor.host)
    active = extensions.active(config)
    learner = Learner(model, config.learner, config.loss, active)

    def search_policy(params, key, obs):
        # Reanalyze's fresh policy targets: a greedy search with the latest parameters.
        return searcher(params, key, obs, Exploration.greedy()).search_policy

    sample_batch = batch_lib.make_sample_batch(
        replay_config=config.replay, loss=config.loss, learner=config.learner, model=model,
        search_policy=search_policy, two_player=spec.two_player,
        history_length=config.env.history_length, extensions=active)
    update = batch_lib.make_update(
        sample_batch, learner.step, replay_config=config.replay,
        updates_per_iteration=config.learner.updates_per_iteration,
        ensure_cache=target_cache.make_ensure(model, config))
    return Pieces(
        config=config, env=env, spec=spec, observation_shape=observation_shape,
        reward_limit=support.reward_limit(config, max_abs_reward), model=model,
        searcher=searcher, learner=learner, actor=actor,
        init=lambda key: learner.init(model.init(key)),
        init_replay=functools.partial(_init_replay, config, spec, active, children),
        sample_batch=sample_batch, update=update)


def _init_replay(config: Config, spec: envs.EnvSpec, active,
                 children: int) -> replay.ReplayBuffer:
    # Frames are stored as the env gives them: one uint8 frame per position.
    dtype = jnp.uint8 if spec.frames else jnp.float32
    buffer = replay.init(config.acting.num_envs, config.replay_length, spec.observation_shape,
                         children, observation_dtype=dtype,
                         max_episode_steps=spec.max_episode_steps,
                         extra_fields=extensions.fields(active, spec))
    if target_cache.pays(config):
        buffer = buffer.replace(value_cache=target_cache.init(config.acting.num_envs,
                                                              config.replay_length))
    return buffer


def _observation_shape(spec: envs.EnvSpec, config: Config) -> tuple[int, ...]:
    """What h sees: the env's observation, or with a frame history the stack of planes."""
    if config.env.history_length:
        if not spec.frames:
            raise ConfigError(
                f"history_length={config.env.history_length}: frame histories need uint8 frame "
                f"observations (height, width, channels); {spec.env_id!r} observes "
                f"{spec.observation_dtype} {spec.observation_shape}; expected 0")
        return history.planes_shape(spec.observation_shape, config.env.history_length)
    return spec.observation_shape


def _check_env_support(config: Config, spec: envs.EnvSpec, *, host: bool) -> None:
    """Raises `ConfigError` for a feature `spec`'s env cannot serve (`host`: a host env)."""
    if host and config.search.mode == "alphazero":
        raise ConfigError(f"mode='alphazero' searches with the env's own step: "
                          f"{spec.env_id!r} is a host env; expected a JAX env "
                          f"(jax/, gymnax/, pgx/ or mjx/ ids)")
    if host and config.acting.random_opening_plies:
        raise ConfigError(f"random_opening_plies={config.acting.random_opening_plies}: "
                          f"{spec.env_id!r} is a host env, whose actors do not count "
                          f"plies; expected 0 (or a JAX env)")
    if spec.two_player and config.network.value_prefix:
        raise ConfigError(f"value_prefix=True: two-player {spec.env_id!r} alternates the "
                          f"rewards' point of view, which a sum over plies mixes; expected "
                          f"False")
    if spec.two_player and config.loss.off_policy_correction_steps:
        raise ConfigError(f"off_policy_correction_steps="
                          f"{config.loss.off_policy_correction_steps}: two-player "
                          f"{spec.env_id!r} learns game outcomes, not n-step returns; "
                          f"expected 0")
    if spec.two_player and config.replay.reanalyze_fraction > 0:
        raise ConfigError(f"reanalyze_fraction={config.replay.reanalyze_fraction}: two-player "
                          f"{spec.env_id!r} learns game outcomes, which need no fresh "
                          f"bootstrap values; expected 0")
