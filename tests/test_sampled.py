"""Sampled MuZero (`muzero_jax.sampled`): the policy's maths by hand, enumerated actions
against plain MuZero, self-play's actions, the policy loss, checkpoints and refusals."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import TRAIN
from scripts import script_in_process as _script_in_process

import muzero_jax as mz
from muzero_jax import checkpoint, envs, experiment, presets, sampled
from muzero_jax.agent import Agent
from muzero_jax.config import ConfigError, validate
from muzero_jax.envs.base import EnvSpec, EpisodeStats, HostEnv, HostStep
from muzero_jax.envs.gymnax_env import _box_bounds
from muzero_jax.learner import cross_entropy
from muzero_jax.networks import Inference, Model
from muzero_jax.pieces import make_pieces
from muzero_jax.search import Exploration
from muzero_jax.targets import Targets

PENDULUM = "gymnax/Pendulum-v1"
BOX = sampled.TanhGaussian(low=(-2.0,), high=(2.0,))

# The smallest control run: every test that builds a Pendulum agent shares its programs.
TINY_CONTROL = dict(acting=dict(num_envs=4, rollout_length=8),
                    network=dict(hidden_size=16, latent_size=8, num_hidden_layers=1),
                    search=dict(num_simulations=4, sampled_actions=3),
                    loss=dict(td_steps=3, unroll_steps=2),
                    learner=dict(batch_size=8, updates_per_iteration=2),
                    replay=dict(capacity=256, min_size=32))


def _normal_log_pdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_log_prob_of_a_squashed_action_by_hand():
    mean, log_std = 0.3, -0.5
    dist = jnp.array([[mean, log_std]])
    # a = 1.0 in [-2, 2]: unit 0.5, pre-tanh atanh(0.5); d a / d u = 2 (1 - 0.5^2)
    expected = (_normal_log_pdf(math.atanh(0.5), mean, math.exp(log_std))
                - math.log(2.0 * (1.0 - 0.25)))
    got = BOX.log_prob(dist, jnp.array([[[1.0]]]))
    np.testing.assert_allclose(np.asarray(got), [[expected]], rtol=1e-5)
    # The density integrates to 1 over the box (midpoint rule on a fine grid).
    grid = np.linspace(-2, 2, 40_001)
    mid = (grid[1:] + grid[:-1]) / 2
    density = np.exp(np.asarray(BOX.log_prob(dist, jnp.asarray(mid)[None, :, None])))
    assert abs(np.sum(density) * (grid[1] - grid[0]) - 1.0) < 1e-3


def test_log_std_is_clipped_and_samples_stay_in_the_box():
    dist = jnp.array([[0.0, 50.0], [0.0, -50.0]])
    _, log_std = BOX.split(dist)
    np.testing.assert_array_equal(np.asarray(log_std),
                                  [[sampled.LOG_STD_MAX], [sampled.LOG_STD_MIN]])
    actions = BOX.sample(dist, jax.random.key(0), 1000)
    assert actions.shape == (2, 1000, 1) and actions.dtype == jnp.float32
    assert float(actions.min()) >= -2.0 and float(actions.max()) <= 2.0
    assert float(jnp.abs(actions[1]).max()) < 0.05  # std e^-5 around tanh(0) = 0


class _Space:
    """The model as `expand` reads it: its action space and whether it is a Box."""

    def __init__(self, space):
        self.space, self.continuous = space, isinstance(space, sampled.TanhGaussian)


def test_prior_correction_by_hand():
    # Discrete: beta = 0.75 pi + 0.25 uniform over the 3 legal of 4 actions.
    logits = jnp.array([[1.0, 0.0, -1.0, 3.0]])
    legal = jnp.array([[True, True, True, False]])
    actions, prior = sampled.expand(_Space(sampled.Categorical(4)), 2, jax.random.key(1),
                                    logits, legal, jnp.float32(0.25))
    pi = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    beta = 0.75 * pi + 0.25 / 3
    a = np.asarray(actions)[0]
    assert set(a) <= {0, 1, 2}  # never the illegal action
    np.testing.assert_allclose(np.asarray(prior)[0], np.log(pi[a]) - np.log(beta[a]),
                               rtol=1e-5)
    # Box: beta = 0.5 pi + 0.5 uniform over [-2, 2] (density 1/4).
    dist = jnp.array([[0.2, -1.0]])
    actions, prior = sampled.expand(_Space(BOX), 5, jax.random.key(2), dist, None,
                                    jnp.float32(0.5))
    pi = np.exp(np.asarray(BOX.log_prob(dist, actions)))
    np.testing.assert_allclose(np.asarray(prior), np.log(pi / (0.5 * pi + 0.5 / 4)),
                               rtol=1e-4, atol=1e-5)
    # Below the root beta = pi: a uniform prior over the samples.
    _, prior = sampled.expand(_Space(BOX), 5, jax.random.key(2), dist, None, None)
    np.testing.assert_array_equal(np.asarray(prior), np.zeros((1, 5)))


@pytest.mark.parametrize("policy", ["muzero", "gumbel"])
def test_enumerated_actions_equal_plain_muzero(policy):
    config = mz.cartpole(network=dict(hidden_size=16, latent_size=8, num_hidden_layers=1),
                         search=dict(policy=policy, num_simulations=6))
    plain = make_pieces(config)
    enumerated = make_pieces(config.replace(sampled_actions=2))
    assert isinstance(enumerated.model, sampled.SampledModel)
    params = plain.model.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (5, 4))
    # One program each (op by op, every op outside the tree's loops compiles alone); the
    # exploration knobs are traced, so both settings run the same program.
    search_plain, search_enumerated = jax.jit(plain.searcher), jax.jit(enumerated.searcher)
    for exploration in (Exploration.training(config), Exploration.greedy()):
        a = search_plain(params, jax.random.key(2), obs, exploration)
        b = search_enumerated(params, jax.random.key(2), obs, exploration)
        for field in ("action", "search_policy", "root_value", "prior_value"):
            np.testing.assert_array_equal(np.asarray(a[field]), np.asarray(b[field]))
        np.testing.assert_array_equal(np.asarray(b.root_actions), np.tile([0, 1], (5, 1)))


@functools.cache
def _control_agent() -> Agent:
    return Agent(presets.control(**TINY_CONTROL))


def test_selfplay_plays_the_chosen_sample_within_the_bounds():
    agent = _control_agent()
    state = agent.init(jax.random.key(0))
    env_state = agent.reset(jax.random.key(1))
    env_state, traj = agent.rollout(state, env_state, jax.random.key(2))
    samples = np.asarray(traj.extra["sampled_actions"])
    assert traj.action.dtype == jnp.int32 and samples.dtype == np.float32
    assert traj.action.shape == (4, 8) and samples.shape == (4, 8, 3, 1)
    assert traj.search_policy.shape == (4, 8, 3)
    np.testing.assert_allclose(np.asarray(traj.search_policy).sum(-1), 1.0, rtol=1e-5)
    assert 0 <= int(traj.action.min()) and int(traj.action.max()) < 3
    assert samples.min() >= -2.0 and samples.max() <= 2.0 and samples.std() > 0.1
    # The env got the sample the index picks: gymnax's Pendulum keeps its last torque.
    played = np.take_along_axis(samples[:, -1, :, 0], np.asarray(traj.action)[:, -1:], 1)
    np.testing.assert_allclose(np.asarray(env_state.inner.last_u), played[:, 0])


class _BoxHostEnvs:
    """B host envs of a 1-D Box in [-2, 2]: reward -|a - 0.5|, episodes of 5 steps; keeps
    every action it was given."""

    def __init__(self, num_envs):
        self.num_envs, self.legal_action_mask, self.given = num_envs, None, []
        self.stats, self.steps = EpisodeStats(num_envs), np.zeros(num_envs, np.int32)

    def reset(self, seed):
        del seed
        return np.zeros((self.num_envs, 3), np.float32)

    def step(self, action):
        self.given.append(action)
        reward = -np.abs(action[:, 0] - 0.5).astype(np.float32)
        self.steps += 1
        truncated = self.steps >= 5
        self.steps[truncated] = 0
        episode_return, episode_length = self.stats.step(reward, truncated)
        obs = np.repeat(action[:, :1], 3, axis=1).astype(np.float32)
        return HostStep(observation=obs, final_observation=obs, reward=reward,
                        terminated=np.zeros(self.num_envs, bool), truncated=truncated,
                        episode_return=episode_return, episode_length=episode_length)

    def close(self):
        pass


class _BoxHostEnv(HostEnv):
    spec = EnvSpec("box-host", (3,), 0, max_episode_steps=5, max_abs_reward=2.5,
                   action_low=(-2.0,), action_high=(2.0,))

    def make(self, num_envs):
        self.envs = _BoxHostEnvs(num_envs)
        return self.envs


def test_host_selfplay_steps_the_envs_with_the_chosen_samples():
    env = _BoxHostEnv()
    agent = Agent(presets.control(**TINY_CONTROL), env=env)
    assert agent.host
    state = agent.init(jax.random.key(0))
    _, traj = agent.rollout(state, agent.reset(jax.random.key(1)), jax.random.key(2))
    samples = np.asarray(traj.extra["sampled_actions"])
    assert samples.shape == (4, 8, 3, 1) and traj.search_policy.shape == (4, 8, 3)
    given = np.stack(env.envs.given, axis=1)  # [B, T, D]
    assert given.dtype == np.float32 and given.shape == (4, 8, 1)
    index = np.asarray(traj.action)[..., None, None]
    np.testing.assert_array_equal(given, np.take_along_axis(samples, index, axis=2)[:, :, 0])
    buffer = agent.add(agent.init_replay(), traj)
    np.testing.assert_array_equal(np.asarray(buffer.extra["sampled_actions"][:, :8]), samples)


def test_host_envs_record_only_the_extensions_that_read_the_search_alone():
    with pytest.raises(ConfigError, match=r"^extension Counterfactual: 'CartPole-v1' is a host"):
        make_pieces(mz.cartpole(env="CartPole-v1", counterfactual_rewards=True))


def test_policy_loss_by_hand():
    model = _control_agent().model
    p = jnp.array([[[0.25, 0.75, 0.0]], [[1.0, 0.0, 0.0]]])  # [N=2, K+1=1, S=3]
    samples = jnp.array([[[[0.5], [-1.5], [1.9]]], [[[0.0], [1.0], [-1.0]]]])
    dist = jnp.array([[0.1, -0.3], [-0.4, 0.2]])
    targets = Targets(actions=jnp.zeros((2, 0), jnp.int32), value=jnp.zeros((2, 1)),
                      value_mask=jnp.ones((2, 1)), reward=jnp.zeros((2, 0)),
                      reward_mask=jnp.zeros((2, 0)), policy=p, policy_mask=jnp.ones((2, 1)),
                      extra={"sampled_actions": samples})
    inference = Inference(state=jnp.zeros((2, 8)), policy_logits=dist,
                          value_logits=jnp.zeros((2, 3)), value=jnp.zeros(2),
                          reward_logits=jnp.zeros((2, 3)), reward=jnp.zeros(2))

    def log_pi(a, mean, log_std):
        return (_normal_log_pdf(math.atanh(a / 2), mean, math.exp(log_std))
                - math.log(1 - (a / 2) ** 2))  # - log((high - low) / 2) = - log 2, below

    expected = [-(0.25 * (log_pi(0.5, 0.1, -0.3) - math.log(2))
                  + 0.75 * (log_pi(-1.5, 0.1, -0.3) - math.log(2))),
                -(log_pi(0.0, -0.4, 0.2) - math.log(2))]
    np.testing.assert_allclose(np.asarray(model.policy_loss(inference, targets, 0)), expected,
                               rtol=1e-5)
    # The plain model's hook is the cross entropy the learner always took.
    logits = jnp.array([[0.3, -0.2, 1.0], [0.0, 0.5, -1.0]])
    plain = Model(mz.cartpole(), 3, (4,)).policy_loss(
        inference.replace(policy_logits=logits), targets, 0)
    np.testing.assert_array_equal(np.asarray(plain),
                                  np.asarray(cross_entropy(p[:, 0], logits)))


def test_learner_unroll_feeds_g_the_sample_the_index_picks():
    model = _control_agent().model
    params = model.init(jax.random.key(0))
    state = model.initial_inference(params, jnp.ones((2, 3))).state
    samples = jnp.array([[[[0.5], [-1.5], [1.9]]], [[[0.0], [1.0], [-1.0]]]])
    targets = Targets(actions=jnp.array([[2], [1]]), value=jnp.zeros((2, 1)),
                      value_mask=jnp.ones((2, 1)), reward=jnp.zeros((2, 1)),
                      reward_mask=jnp.ones((2, 1)), policy=jnp.zeros((2, 1, 3)),
                      policy_mask=jnp.ones((2, 1)), extra={"sampled_actions": samples})
    got = model.unroll_inference(params, state, targets.actions[:, 0], targets, 1)
    want = model.recurrent_inference(params, state, jnp.array([[1.9], [1.0]]))
    np.testing.assert_array_equal(np.asarray(got.state), np.asarray(want.state))


def _leaves(tree):
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype,
                                                                       jax.dtypes.prng_key)
                       else x) for x in jax.tree.leaves(tree)]


def test_a_checkpoint_restores_the_new_heads_replay_and_envs_exactly(tmp_path):
    agent = _control_agent()
    state = agent.init(jax.random.key(0))
    env_state, traj = agent.rollout(state, agent.reset(jax.random.key(1)), jax.random.key(2))
    buffer = agent.add(agent.init_replay(), traj)
    saved = {"train_state": state, "replay": buffer, "env_state": env_state,
             "rng": {"key": jax.random.key(3)}}
    writer = checkpoint.Checkpointer(str(tmp_path), keep=1)
    writer.save(1, saved, {"iteration": 1})
    writer.wait()
    restored = checkpoint.restore_run(
        checkpoint.Checkpointer(str(tmp_path), create=False), state=agent.init(jax.random.key(7)),
        buffer=agent.init_replay(), env_state=agent.reset(jax.random.key(8)),
        key=jax.random.key(9))
    for before, after in zip(_leaves(list(saved.values())), _leaves(restored[:4]), strict=True):
        np.testing.assert_array_equal(before, after)
    policy = agent.model.initial_inference(restored[0].params, jnp.zeros((1, 3))).policy_logits
    assert policy.shape == (1, 2)  # the Gaussian's mean and log-std
    # Self-play goes on from the restored run as from the saved one.
    _, again = agent.rollout(restored[0], restored[2], jax.random.key(4))
    _, then = agent.rollout(state, env_state, jax.random.key(4))
    np.testing.assert_array_equal(np.asarray(again.extra["sampled_actions"]),
                                  np.asarray(then.extra["sampled_actions"]))


def test_box_envs_default_to_the_control_preset():
    assert experiment.preset_for_env(PENDULUM) == "control"
    assert experiment.preset_for_env("gymnax/MountainCarContinuous-v0") == "control"
    assert experiment.preset_for_env("gymnax/Acrobot-v1") == "classic"
    assert experiment.preset_for_env("Pendulum-v1") == "control"  # Gymnasium's, on the host
    assert experiment.preset_for_env("my_package.envs:Maze-v0") == "classic"
    spec = envs.make(mz.Config().replace(env="gymnax/MountainCarContinuous-v0").env).spec
    assert (spec.num_actions, spec.action_low, spec.action_high) == (0, (-1.0,), (1.0,))
    assert spec.max_abs_reward == 100.0


def test_a_box_env_without_sampled_search_is_refused_before_compiling(tmp_path, monkeypatch,
                                                                      capsys):
    with pytest.raises(ConfigError, match=r"^sampled_actions=0: 'gymnax/Pendulum-v1' has Box"):
        make_pieces(presets.control(sampled_actions=0))
    code, err = _script_in_process(TRAIN, ["--env", PENDULUM, "--preset", "classic"],
                                   monkeypatch, capsys, tmp_path)
    assert code == 2 and err.count("\n") == 1 and "search.sampled_actions >= 1" in err
    assert not list(tmp_path.iterdir())


def test_an_unbounded_box_is_refused_in_one_line():
    from gymnax.environments import spaces

    with pytest.raises(ConfigError, match=r"^env='gymnax/X': action space Box.*unbounded"):
        _box_bounds("gymnax/X", spaces.Box(-np.inf, 1.0, (2,)))
    assert _box_bounds("gymnax/X", spaces.Box(-1.0, 2.0, (2,))) == ((-1.0, -1.0), (2.0, 2.0))
    with pytest.raises(ValueError, match="finite"):
        EnvSpec("x", (3,), 0, action_low=(-np.inf,), action_high=(1.0,))


@pytest.mark.parametrize("change, named", [
    (dict(mode="alphazero", unroll_steps=0), "mode='alphazero'"),
    (dict(value_prefix=True), "value_prefix=True"),
    (dict(counterfactual_rewards=True), "counterfactual_rewards=True"),
    (dict(reanalyze_fraction=0.5), "reanalyze_fraction=0.5"),
    (dict(chance_outcomes=4, policy="stochastic"), "chance_outcomes > 0"),
    (dict(exploration_repeat_probability=0.5), "exploration_repeat_probability=0.5"),
])
def test_what_sampled_search_cannot_serve_is_refused(change, named):
    with pytest.raises(ConfigError, match=f"^sampled_actions=16: {named}"):
        validate(presets.control(**change))


def test_more_samples_than_discrete_actions_is_refused():
    with pytest.raises(ConfigError, match=r"^sampled_actions=3: 'jax/CartPole-v1' has 2 "):
        make_pieces(mz.cartpole(sampled_actions=3))


def test_k_of_n_samples_discrete_actions():
    with pytest.raises(ConfigError, match=r"^sampled_actions=1: policy='gumbel' needs at "):
        make_pieces(mz.cartpole(sampled_actions=1))
    config = presets.classic(env="gymnax/Acrobot-v1", acting=dict(num_envs=4, rollout_length=8,
                                                                  exploration_repeat_probability=0),
                             network=dict(hidden_size=16, latent_size=8, num_hidden_layers=1),
                             search=dict(num_simulations=4, sampled_actions=2))
    agent = Agent(config)
    state = agent.init(jax.random.key(0))
    _, traj = agent.rollout(state, agent.reset(jax.random.key(1)), jax.random.key(2))
    samples = np.asarray(traj.extra["sampled_actions"])
    assert samples.shape == (4, 8, 2) and samples.dtype == np.int32
    assert set(samples.ravel()) == {0, 1, 2} and traj.search_policy.shape == (4, 8, 2)
    assert set(np.asarray(traj.action).ravel()) <= {0, 1}


@pytest.mark.slow
def test_pendulum_learns_with_the_default_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = experiment.main(["--env", PENDULUM, "--seed", "0", "--out", str(tmp_path / "run")],
                              description="", default_preset=None)
    assert summary["preset"] == "control" and summary["env_steps"] <= 50_000
    assert summary["eval_episodes"] == 100 and summary["eval_return_mean"] >= -200
