"""The extension protocol: a variant's fields travel self-play -> replay -> window ->
targets -> loss by name, and its loss terms join a core term or stand alone."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muzero_jax import batch as batch_lib
from muzero_jax import extensions, replay
from muzero_jax.extensions.counterfactual import Counterfactual
from muzero_jax.learner import Batch, Learner
from muzero_jax.selfplay import JaxActor, Trajectory
from muzero_jax.targets import Targets, window_masks

B, L, T, W = 2, 12, 6, 4


@dataclasses.dataclass(frozen=True)
class Ply(extensions.Extension):
    """Records each step's ply and a pair per step; its targets are rows 0..K-1's plies
    (0 past an episode's end); one loss term stands alone, one joins the value term."""

    LOSSES: ClassVar = {"ply_loss": None, "value_extra": "value"}

    def fields(self, spec):
        return {"ply": jax.ShapeDtypeStruct((), jnp.int32),
                "pair": jax.ShapeDtypeStruct((2,), jnp.float32)}

    def record(self, env, key, env_state, search, action):
        assert key is None  # USES_KEY is False
        ply = env_state.step_count
        return {"ply": ply, "pair": jnp.stack([ply, action], axis=-1).astype(jnp.float32)}

    def targets(self, buffer, window, past_end, past_truncation, unroll_steps):
        return {"ply": jnp.where(past_end[:, :-1], 0, window.extra["ply"][:, :unroll_steps])}

    def unroll_loss(self, model, params, state, inference, k, targets):
        ply = targets.extra["ply"][:, k - 1].astype(jnp.float32)
        return {"ply_loss": ply * k, "value_extra": jnp.full_like(ply, 2.0)}


def _trajectory(start, extra):
    t = np.arange(start, start + T)
    zeros = jnp.zeros((B, T))
    return Trajectory(
        observation=jnp.asarray(np.broadcast_to(t, (B, T))[..., None], jnp.float32),
        action=jnp.zeros((B, T), jnp.int32), reward=zeros,
        terminated=jnp.zeros((B, T), bool), truncated=jnp.zeros((B, T), bool),
        search_policy=jnp.full((B, T, 2), 0.5), root_value=zeros, final_value=zeros,
        final_observation=jnp.zeros((B, T, 1)), episode_return=zeros,
        episode_length=jnp.zeros((B, T), jnp.int32), extra=extra)


def test_fields_are_stored_and_gathered_into_windows_by_name():
    fields = extensions.fields((Ply(),), spec=None)
    buf = replay.init(B, L, (1,), 2, extra_fields=fields)
    assert buf.extra["pair"].shape == (B, L, 2) and buf.extra["ply"].dtype == jnp.int32
    core = replay.bytes_per_position(replay.init(B, L, (1,), 2))
    assert replay.bytes_per_position(buf) == core + 4 + 8  # int32 ply, 2 float32 pair
    for start in (0, T):
        t = np.arange(start, start + T)
        extra = {"ply": jnp.asarray(np.broadcast_to(t, (B, T)), jnp.int32),
                 "pair": jnp.asarray(np.stack([np.broadcast_to(t, (B, T)),
                                               np.broadcast_to(-t, (B, T))], -1), jnp.float32)}
        buf = replay.add(buf, _trajectory(start, extra))
    window = replay.sample(buf, jax.random.key(0), 64, W)
    first = np.asarray(window.observation[:, 0]).astype(int)
    np.testing.assert_array_equal(window.extra["ply"], first[:, None] + np.arange(W))
    np.testing.assert_array_equal(window.extra["pair"][..., 1], -(first[:, None] + np.arange(W)))
    with pytest.raises(ValueError, match=r"extension fields \[\]; the buffer keeps "
                                         r"\['pair', 'ply'\]"):
        replay.add(buf, _trajectory(0, {}))


def test_two_extensions_declaring_one_field_are_refused():
    with pytest.raises(ValueError, match="declares field 'counter_action', which another"):
        extensions.fields((Counterfactual(), Counterfactual()), spec=None)


def test_active_extensions_follow_the_config(tiny_config):
    assert extensions.active(tiny_config) == ()
    chosen = extensions.active(tiny_config.replace(counterfactual_rewards=True))
    assert [type(e) for e in chosen] == [Counterfactual]


def test_the_rollout_records_the_fields_and_keeps_its_keys(tiny_agent):
    """An extension that takes no key leaves the rollout as it was, plus its fields."""
    state = tiny_agent.init(jax.random.key(0))
    env_state = tiny_agent.reset(jax.random.key(1))
    exploration = tiny_agent.training_exploration
    plain = tiny_agent.actor
    with_ply = JaxActor(tiny_agent.env, tiny_agent.searcher, (Ply(),))
    _, a = plain.rollout(state.params, env_state, jax.random.key(2), exploration, 6)
    _, b = with_ply.rollout(state.params, env_state, jax.random.key(2), exploration, 6)
    assert a.extra == {} and set(b.extra) == {"ply", "pair"}
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b.replace(extra={})), strict=True):
        np.testing.assert_array_equal(x, y)
    done = np.asarray(a.terminated | a.truncated)
    ply = np.zeros((len(done), 6), int)
    ply[:, 0] = env_state.step_count
    for t in range(1, 6):
        ply[:, t] = np.where(done[:, t - 1], 0, ply[:, t - 1] + 1)
    np.testing.assert_array_equal(b.extra["ply"], ply)
    np.testing.assert_array_equal(b.extra["pair"][..., 1], a.action)


def test_loss_terms_stand_alone_or_join_their_core_term(tiny_agent):
    cfg = tiny_agent.config.replace(value_loss_weight=0.5)
    k, n = cfg.loss.unroll_steps, 4
    rng = np.random.default_rng(0)
    plies = jnp.asarray(rng.integers(0, 5, size=(n, k)), jnp.int32)
    targets = Targets(
        actions=jnp.zeros((n, k), jnp.int32), value=jnp.ones((n, k + 1)),
        value_mask=jnp.ones((n, k + 1)), reward=jnp.zeros((n, k)),
        reward_mask=jnp.ones((n, k)), policy=jnp.full((n, k + 1, 2), 0.5),
        policy_mask=jnp.ones((n, k + 1)), extra={"ply": plies})
    batch = Batch(observation=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
                  targets=targets, weight=jnp.asarray([1.0, 0.5, 0.25, 1.0]))
    params = tiny_agent.init(jax.random.key(0)).params
    base_total, base = Learner(tiny_agent.model, cfg.learner, cfg.loss).loss(params, batch)
    total, m = Learner(tiny_agent.model, cfg.learner, cfg.loss, (Ply(),)).loss(params, batch)
    # Each term is summed over k = 1..K and divided by K, as the core unrolled terms.
    ply_loss = np.sum(np.asarray(plies) * np.arange(1, k + 1), axis=1) / k
    assert float(m["ply_loss"]) == pytest.approx(ply_loss.mean(), rel=1e-6)
    assert float(m["value_extra"]) == pytest.approx(2.0, rel=1e-6)
    assert float(m["value_loss"]) == float(base["value_loss"])  # reported apart
    # Alone: added as it is; joined: under the value term's weight 0.5.
    expected = np.mean(np.asarray(batch.weight) * (ply_loss + 0.5 * 2.0))
    assert float(total - base_total) == pytest.approx(expected, rel=1e-5)


def test_the_batch_pipeline_adds_the_extensions_targets(tiny_agent):
    cfg = tiny_agent.config
    buf = replay.init(B, L, (4,), 2, extra_fields=extensions.fields((Ply(),), None))
    ply = np.broadcast_to(np.arange(T), (B, T))
    terminated = np.zeros((B, T), bool)
    terminated[:, 2] = True
    traj = _trajectory(0, {"ply": jnp.asarray(ply, jnp.int32),
                           "pair": jnp.zeros((B, T, 2))})
    traj = traj.replace(observation=jnp.zeros((B, T, 4)), final_observation=jnp.zeros((B, T, 4)),
                        terminated=jnp.asarray(terminated))
    buf = replay.add(replay.add(buf, traj), traj)
    sample_batch = batch_lib.make_sample_batch(
        replay_config=cfg.replay, loss=cfg.loss,
        learner=dataclasses.replace(cfg.learner, batch_size=16, target_update_period=0),
        model=tiny_agent.model, search_policy=None, two_player=False, extensions=(Ply(),))
    batch, window, _ = sample_batch(None, buf, jax.random.key(3))
    past_end, _ = window_masks(window, cfg.loss.unroll_steps)
    k = cfg.loss.unroll_steps
    np.testing.assert_array_equal(
        batch.targets.extra["ply"],
        np.where(past_end[:, :-1], 0, np.asarray(window.extra["ply"])[:, :k]))
    assert np.asarray(past_end).any()
