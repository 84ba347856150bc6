"""The host path on Gymnasium ids: same trajectories as the JAX path, spaces, clear errors."""

import os
import subprocess
import sys

import box_envs
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import checkpoint, envs
from muzero_jax.config import ConfigError
from muzero_jax.envs.gymnasium_host import GymnasiumEnv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "cartpole.py")

FIELDS = ("observation", "final_observation", "reward", "terminated", "truncated",
          "episode_return", "episode_length")

# Three CartPole starts (x, x_dot, theta, theta_dot), driven by the actions below:
# env 0 is pushed the way it leans and falls (termination), env 1 is balanced to the
# time limit (truncation), env 2 takes fixed pseudo-random actions.
STARTS = np.array([[0.0, 0.0, 0.1, 0.2],
                   [0.02, -0.01, 0.01, 0.0],
                   [-0.03, 0.02, -0.02, 0.01]])


def _actions(obs: np.ndarray, t: int) -> np.ndarray:
    balance = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    return np.array([1 - balance[0], balance[1], (t * 7 + 3) % 5 % 2])


def test_host_and_jax_cartpole_give_the_same_trajectory_fields():
    """Gymnasium's numpy CartPole on the host and jax/CartPole-v1 vmapped, from the same
    start states with the same actions, through a termination and a time limit."""
    limit, num_envs = 12, len(STARTS)
    host_env = envs.make(mz.cartpole(env="CartPole-v1", max_episode_steps=limit))
    assert isinstance(host_env, envs.HostEnv)
    host = host_env.make(num_envs)
    host.reset(seed=0)
    subenvs = host._vec.envs  # sync mode: the Gymnasium envs themselves
    for b in range(num_envs):
        subenvs[b].unwrapped.state = STARTS[b].copy()

    jax_env = envs.make(mz.cartpole(env="jax/CartPole-v1", max_episode_steps=limit))
    assert isinstance(jax_env, envs.JaxEnv)
    step = jax.jit(jax.vmap(jax_env.step))
    state = jax.vmap(jax_env.reset)(jax.random.split(jax.random.key(0), num_envs))
    obs = STARTS.astype(np.float32)
    state = state.replace(inner=jnp.asarray(obs), observation=jnp.asarray(obs))

    seen_terminated = seen_truncated = 0
    for t in range(30):
        action = _actions(obs, t)
        ours = host.step(action)
        state, theirs = step(state, jnp.asarray(action, jnp.int32))
        theirs = jax.tree.map(np.asarray, theirs)
        done = ours.terminated | ours.truncated
        for name in FIELDS:
            mine, other = getattr(ours, name), getattr(theirs, name)
            assert mine.dtype == other.dtype, (name, mine.dtype, other.dtype)
            if name == "observation":  # a new episode starts from each env's own draw
                mine, other = mine[~done], other[~done]
            np.testing.assert_allclose(mine, other, rtol=0, atol=2e-6, err_msg=f"{name} t={t}")
        assert np.all(np.abs(ours.observation[done]) <= 0.05)  # fresh starts, both paths
        assert np.all(np.abs(theirs.observation[done]) <= 0.05)
        seen_terminated += int(ours.terminated.sum())
        seen_truncated += int(ours.truncated.sum())
        obs = ours.observation
        if done.any():  # continue the JAX envs from the host's new starts
            inner = np.asarray(state.inner).copy()
            for b in np.flatnonzero(done):
                inner[b] = subenvs[b].unwrapped.state
            state = state.replace(inner=jnp.asarray(inner, jnp.float32),
                                  observation=jnp.asarray(obs))
    host.close()
    assert seen_terminated >= 2 and seen_truncated >= 2, (seen_terminated, seen_truncated)


def test_truncated_episode_keeps_its_final_observation():
    env = envs.make(mz.cartpole(env="CartPole-v1", max_episode_steps=3))
    batch = env.make(2)
    first = batch.reset(seed=5)
    reference = [gym.make("CartPole-v1") for _ in range(2)]
    expected = [r.reset(seed=5 + b)[0] for b, r in enumerate(reference)]
    np.testing.assert_array_equal(first, np.stack(expected))
    for _ in range(3):
        out = batch.step(np.array([0, 1]))
        expected = [r.step(a)[0] for r, a in zip(reference, (0, 1), strict=True)]
    assert out.truncated.tolist() == [True, True] and not out.terminated.any()
    np.testing.assert_array_equal(out.final_observation, np.stack(expected))
    assert not np.allclose(out.observation, out.final_observation)
    assert out.episode_length.tolist() == [3, 3] and out.episode_return.tolist() == [3.0, 3.0]
    batch.close()


def test_discrete_observations_are_one_hot_float32_and_step_through_the_agent():
    config = mz.cartpole(env="FrozenLake-v1", num_envs=2, rollout_length=4, hidden_size=8,
                         latent_size=8, num_hidden_layers=1, num_simulations=2,
                         value_support_size=2, reward_support_size=2)
    agent = mz.Agent(config)
    assert agent.spec.observation_shape == (16,) and agent.spec.observation_dtype == "float32"
    assert agent.spec.eval_id is None  # gymnasium.make gives ints, not our one-hot vectors
    assert agent.spec.max_episode_steps == 100  # FrozenLake-v1's registered limit
    env_state = agent.reset(jax.random.key(0))
    start = env_state.observation
    assert start.dtype == np.float32
    np.testing.assert_array_equal(start, np.eye(16, dtype=np.float32)[[0, 0]])  # top-left
    env_state, trajectory = agent.rollout(agent.init(jax.random.key(1)), env_state,
                                          jax.random.key(2))
    observation = np.asarray(trajectory.observation)
    assert observation.shape == (2, 4, 16) and observation.dtype == np.float32
    np.testing.assert_array_equal(observation.sum(-1), np.ones((2, 4)))
    assert set(np.unique(observation)) == {0.0, 1.0}


# --- errors before anything compiles -------------------------------------------------


class DictObservationEnv(gym.Env):
    """The smallest env with a Dict observation space (not supported)."""

    observation_space = gym.spaces.Dict({"position": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"position": 0}, {}

    def step(self, action):
        return {"position": 0}, 0.0, True, False, {}


DICT_ENV_ID = "muzero_jax_tests/DictObservation-v0"
if DICT_ENV_ID not in gym.registry:
    gym.register(id=DICT_ENV_ID, entry_point=DictObservationEnv, max_episode_steps=10)

BAD_ENVS = (
    (box_envs.UNBOUNDED_ID, ["action space Box(-inf, inf, (2,), float32) is unbounded",
                             "finite low and high"]),
    (box_envs.MULTI_DISCRETE_ID, ["action space MultiDiscrete([2 3]) is not supported",
                                  "Discrete or a float Box"]),
    ("NoSuchEnv-v0", ["'NoSuchEnv-v0'", "not a registered Gymnasium env", "gymnax/<id>"]),
    ("no_such_module_for_tests:Maze-v0",
     ["cannot import module 'no_such_module_for_tests'", "module.path:EnvId"]),
    (DICT_ENV_ID, ["observation space Dict(", "Box", "Discrete (one-hot)"]),
)


@pytest.mark.parametrize("env_id,expected", BAD_ENVS, ids=[e for e, _ in BAD_ENVS])
def test_unsupported_envs_raise_config_error(env_id, expected):
    with pytest.raises(ConfigError) as error:
        GymnasiumEnv(mz.cartpole(env=env_id))
    for text in expected:
        assert text in str(error.value), (text, str(error.value))


@pytest.mark.parametrize("env_id,expected", BAD_ENVS, ids=[e for e, _ in BAD_ENVS])
def test_experiment_exits_with_code_2_on_unsupported_envs(env_id, expected, tmp_path,
                                                          capsys, monkeypatch):
    """In process, so that nothing is imported twice: the script's own `main`."""
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    monkeypatch.setattr(mz.Agent, "init", _must_not_compile)
    try:
        import cartpole as script
    finally:
        sys.path.pop(0)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        script.main(["--env.id", env_id, "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, (text, err)
    assert not out.exists()  # failed before the run directory was made


def _must_not_compile(*args, **kwargs):
    raise AssertionError("an unsupported env reached parameter initialisation")


def test_an_unbounded_box_exits_with_code_2_from_the_command_line(tmp_path):
    # `module:EnvId` from the tests directory: the script imports box_envs, which registers it.
    proc = subprocess.run([sys.executable, SCRIPT, "--env.id",
                           f"box_envs:{box_envs.UNBOUNDED_ID}", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300,
                          cwd=os.path.join(ROOT, "tests"), env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "action space Box(-inf, inf, (2,), float32) is unbounded" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_host_self_play_acts_one_update_behind_while_learning(tiny_config, monkeypatch,
                                                              tmp_path):
    # Which parameters each training rollout searched with, by their update count: in
    # turn, the latest; with act_while_learning, those from before the update running
    # beside it. Both runs take the same updates, and a checkpoint at every update (each
    # waits for the one running) holds them all.
    acted_with = []
    rollout = mz.Agent.rollout

    def spy(self, state, *args, **kwargs):
        acted_with.append(int(state.step))
        return rollout(self, state, *args, **kwargs)

    monkeypatch.setattr(mz.Agent, "rollout", spy)
    # 32 positions an iteration: the first update follows the first rollout.
    cfg = tiny_config.replace(env="CartPole-v1", total_env_steps=5 * 32,
                              eval_every=0, solve_return=None)
    in_turn = mz.train(cfg)
    in_turn_acted, acted_with[:] = list(acted_with), []
    beside = mz.train(cfg.replace(act_while_learning=True,
                                          checkpoint_every=cfg.learner.updates_per_iteration),
                      run_dir=str(tmp_path))

    per_update = cfg.learner.updates_per_iteration
    assert in_turn_acted == [per_update * i for i in (0, 1, 2, 3, 4)]
    assert acted_with == [per_update * i for i in (0, 0, 1, 2, 3)]
    assert in_turn.train_steps == beside.train_steps == 5 * per_update
    _, [(_, restored)] = checkpoint.restore_train_states(str(tmp_path), beside.state)
    assert int(restored.step) == 5 * per_update
