import jax
import numpy as np

import muzero_jax as mz


def test_training_learns_to_balance_the_pole():
    """A small, short run must clearly beat the untrained agent on CartPole-v1."""
    config = mz.cartpole(num_envs=8, rollout_length=25, hidden_size=32, latent_size=32,
                         num_simulations=8, batch_size=128, updates_per_iteration=25,
                         replay_capacity=20_000, min_replay_size=400,
                         total_env_steps=7_000, eval_every=0, solve_return=None,
                         learning_rate=1e-3, seed=0)
    result = mz.train(config, log=None)
    agent = result.agent
    untrained = agent.init(jax.random.key(0))
    before = mz.evaluate_jax(agent, untrained, jax.random.key(1), 16)
    after = mz.evaluate_jax(agent, result.state, jax.random.key(1), 16)
    assert result.env_steps == 7_000
    assert result.train_steps > 0
    assert np.mean(after) >= 60, (np.mean(before), np.mean(after))
    assert np.mean(after) >= 3 * np.mean(before)
    row = result.history[-1]
    for name in ("loss", "value_loss", "policy_loss", "reward_loss", "grad_norm"):
        assert np.isfinite(row[name])


def test_gymnasium_evaluation_plays_whole_episodes(tiny_agent):
    state = tiny_agent.init(jax.random.key(0))
    returns = mz.evaluate_gymnasium(tiny_agent, state, "CartPole-v1", 3, seed=0)
    assert returns.shape == (3,)
    assert np.all(returns >= 8) and np.all(returns <= 500)
    assert np.all(returns == np.round(returns))
