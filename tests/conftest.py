import pytest

import muzero_jax as mz


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long learning checks)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_config():
    """A CartPole config small enough to compile and run in seconds."""
    return mz.cartpole(num_envs=4, rollout_length=8, hidden_size=16, latent_size=8,
                       num_hidden_layers=1, num_simulations=4, batch_size=16,
                       updates_per_iteration=2, replay_capacity=4 * 64,
                       min_replay_size=32, td_steps=3, unroll_steps=2,
                       learning_rate=3e-3)


@pytest.fixture(scope="session")
def tiny_agent(tiny_config):
    return mz.Agent(tiny_config)
