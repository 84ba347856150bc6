"""Stochastic MuZero: its loss terms, the codebook's gradient, chance nodes in search,
a gamble whose answer is known, and pgx's 2048 and backgammon."""

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

import muzero_jax as mz
from muzero_jax import extensions, search, stochastic_gumbel
from muzero_jax.config import Config, ConfigError, validate
from muzero_jax.envs import pgx_env
from muzero_jax.extensions.stochastic import Stochastic
from muzero_jax.learner import Batch, Learner
from muzero_jax.search import Exploration
from muzero_jax.stochastic import (
    StochasticInference,
    StochasticModel,
    commitment_loss,
    make_tree_fns,
    quantize,
)
from muzero_jax.targets import Targets

LN2 = math.log(2.0)


# --- the codebook and the loss terms, by hand --------------------------------------

def test_quantize_is_one_hot_forward_and_softmax_backward():
    logits = jnp.array([[0.0, LN2, 0.0]])  # softmax: 0.25, 0.5, 0.25
    code, probs = quantize(logits)
    np.testing.assert_array_equal(code, [[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(probs, [[0.25, 0.5, 0.25]], rtol=1e-6)
    # Straight through: d/dlogits of w . code is d/dlogits of w . softmax(logits),
    # p * (w - p . w) = [0.25 * 0.75, 0.5 * -0.25, 0.25 * -0.25] for w = e_0.
    grad = jax.grad(lambda x: quantize(x)[0][0, 0])(logits)
    np.testing.assert_allclose(grad, [[0.1875, -0.125, -0.0625]], rtol=1e-6)


def test_commitment_loss_pulls_the_encoder_to_its_code_only():
    code, probs = jnp.array([[0.0, 1.0, 0.0]]), jnp.array([[0.25, 0.5, 0.25]])
    np.testing.assert_allclose(commitment_loss(code, probs), [0.375], rtol=1e-6)
    d_code, d_probs = jax.grad(lambda c, p: commitment_loss(c, p).sum(), argnums=(0, 1))(
        code, probs)
    np.testing.assert_array_equal(d_code, 0.0)
    np.testing.assert_allclose(d_probs, [[0.5, -1.0, 0.5]], rtol=1e-6)


def _inference(q_logits, chance_logits, code, code_probs):
    n = code.shape[0]
    zeros = jnp.zeros((n, 3))
    return StochasticInference(
        state=zeros, policy_logits=zeros, value_logits=zeros, value=jnp.zeros(n),
        reward_logits=zeros, reward=jnp.zeros(n), afterstate=zeros,
        chance_logits=chance_logits, afterstate_value_logits=q_logits, code=code,
        code_probs=code_probs)


def test_extension_terms_by_hand():
    # Atoms -1, 0, 1 (identity squash): a value target of 0.5 is two-hot [0, 0.5, 0.5].
    model = SimpleNamespace(value_support_size=1, squash="identity")
    code = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    inference = _inference(
        q_logits=jnp.zeros((2, 3)), chance_logits=jnp.array([[0.0, LN2, 0.0]] * 2),
        code=code, code_probs=jnp.array([[0.25, 0.5, 0.25]] * 2))
    targets = Targets(actions=None, value=jnp.array([[0.5, 0.0], [0.5, 0.0]]),
                      value_mask=jnp.array([[1.0, 1.0], [0.0, 1.0]]), reward=None,
                      reward_mask=None, policy=None, policy_mask=None,
                      extra={"chance_mask": jnp.array([[1.0], [0.0]])})
    terms = Stochastic(commitment_weight=2.0).unroll_loss(model, None, None, inference,
                                                           1, targets)
    # Q: uniform logits against any target cost ln 3; the second row's value is masked.
    np.testing.assert_allclose(terms["afterstate_value_loss"], [math.log(3.0), 0.0],
                               rtol=1e-6)
    # sigma = [0.25, 0.5, 0.25] against code 1: -ln 0.5; the second row's code is masked.
    np.testing.assert_allclose(terms["chance_loss"], [LN2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(terms["commitment_loss"], [2.0 * 0.375, 0.0], rtol=1e-6)


def test_extension_targets_are_the_observations_reached_and_a_mask_past_the_end():
    from muzero_jax import replay

    buffer = replay.init(1, 6, (1,), 2)
    buffer = buffer.replace(observation=jnp.arange(6.0).reshape(1, 6, 1), count=jnp.int32(9))
    # A window from slot 4 of a 6-slot ring: its rows 1 and 2 are slots 5 and 0; row 1's
    # step ended the episode, so row 2's observation is the next episode's: masked.
    window = replay.Window(observation=None, action=None, reward=None, terminated=None,
                           truncated=None, search_policy=None, root_value=None,
                           final_value=None, stream=jnp.array([0]),
                           position=jnp.array([4]), weight=None)
    past_end = jnp.array([[False, False, True]])
    out = Stochastic().targets(buffer, window, past_end, past_end, unroll_steps=2)
    np.testing.assert_array_equal(out["chance_observation"], [[[5.0], [0.0]]])
    np.testing.assert_array_equal(out["chance_mask"], [[1.0, 0.0]])


def test_extension_joins_value_and_policy_and_commitment_stands_alone():
    cfg = Config().replace(chance_outcomes=4, policy="stochastic", commitment_loss_weight=0.5)
    (active,) = extensions.active(cfg)
    assert active.commitment_weight == 0.5
    assert extensions.loss_terms((active,)) == {
        "afterstate_value_loss": "value", "chance_loss": "policy", "commitment_loss": None}
    assert extensions.active(Config()) == ()


@pytest.mark.parametrize("changes, message", [
    (dict(chance_outcomes=8), "policy 'stochastic' or 'stochastic_gumbel'"),
    (dict(policy="stochastic"), "needs a codebook"),
    (dict(policy="stochastic_gumbel"), "needs a codebook"),
    (dict(policy="stochastic", chance_outcomes=8, kind="resnet"), "expected kind 'mlp' or"),
])
def test_config_refuses_half_a_stochastic_mode(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(Config().replace(**changes))


# --- chance nodes in the search -------------------------------------------------------

OBS, A, C = 4, 2, 4


def _toy_config(**changes) -> Config:
    return Config().replace(
        network=dict(hidden_size=32, latent_size=16, num_hidden_layers=1, chance_outcomes=C,
                     support_squash="identity", value_support_size=20,
                     reward_support_size=20),
        search=dict(policy="stochastic", num_simulations=200,
                    q_normalisation="parent_and_siblings"),
        loss=dict(discount=1.0, unroll_steps=2, commitment_loss_weight=1.0),
        learner=dict(batch_size=160, learning_rate=3e-3, weight_decay=0.0, lr_decay_steps=1000,
                     lr_end_fraction=0.01)).replace(**changes)


@pytest.mark.parametrize("policy", ["stochastic", "stochastic_gumbel"])
def test_a_chance_node_keeps_the_player_and_the_state_after_it_flips(policy):
    """Two simulations of a two-player tree: the first expands afterstate (s, a), the
    second one chance outcome c below it (action 1 is masked, so both go through action
    0). The root's Q(s, a) is the afterstate's value
    from the mover's view, unflipped (discount +1 on the decision edge), averaged with
    r - v(s') (discount -1 on the chance edge: s' is the next player's)."""
    cfg = _toy_config(num_simulations=2, policy=policy)
    model = StochasticModel(cfg, A, (OBS,))
    params = model.init(jax.random.key(3))
    obs = jnp.array([[1.0, 0.0, 0.0, 0.0]])
    tree = jax.jit(search.make_search_tree(cfg.search, model, discount=1.0, two_player=True))(
        params, jax.random.key(0), obs, Exploration.greedy(), jnp.array([[False, True]]))
    action = 0
    assert int(tree.children_visits[0, 0, action]) == 2
    state = model.initial_inference(params, obs).state
    after, chance_logits, q_logits = model.afterstate(params, state, jnp.array([action]))
    q = float(model.value_of(q_logits)[0])
    outcome = int(jnp.argmax(chance_logits[0]))  # mctx's first pick at a chance node
    nxt = model.chance(params, after, jax.nn.one_hot(jnp.array([outcome]), C))
    expected = (q + float(nxt.reward[0]) - float(nxt.value[0])) / 2
    np.testing.assert_allclose(tree.children_discounts[0, 0, action], 1.0)
    np.testing.assert_allclose(tree.qvalues(jnp.zeros((1,), jnp.int32))[0, action], expected,
                               rtol=1e-5, atol=1e-6)
    _, chance_fn = make_tree_fns(model, search.tree_discount(1.0, two_player=True))
    out, _ = chance_fn(params, None, jnp.array([outcome]), after)
    np.testing.assert_array_equal(out.discount, [-1.0])


def test_chance_nodes_are_visited_in_proportion_to_sigma():
    """The chance selection of both stochastic policies: argmax sigma / (visits + 1),
    from no visits, gives each code its share of 10 visits exactly."""
    sigma = jnp.array([0.1, 0.7, 0.2])
    visits = jnp.zeros(3, jnp.int32)
    for _ in range(10):
        node = SimpleNamespace(children_prior_logits=jnp.log(sigma)[None],
                               children_visits=visits[None])
        visits = visits.at[stochastic_gumbel.chance_selection(node, 0)].add(1)
    np.testing.assert_array_equal(visits, [1, 7, 2])


def test_the_final_gumbel_score_keeps_only_the_considered_actions():
    """Gumbel + (logit - max logit) + completed Q where the visits equal the considered
    count, -inf elsewhere; a masked logit is floored at -1e9, not lost."""
    score = stochastic_gumbel.score_considered(
        jnp.array([4]), gumbel=jnp.array([0.5, -0.2, 0.0, 1.0]),
        logits=jnp.array([1.0, 3.0, -1e30, 2.0]), completed_q=jnp.array([0.1, 0.2, 0.3, 0.4]),
        visits=jnp.array([4, 4, 4, 2]))
    np.testing.assert_allclose(score[:2], [0.5 - 2.0 + 0.1, -0.2 + 0.0 + 0.2], rtol=1e-6)
    assert score[2] == -1e9 and score[3] == -jnp.inf


# --- the gamble: expected value 1.0, most likely outcome 0 -----------------------------
#
# From s0 (observation e_0) "safe" (action 0) pays 0.5 and reaches e_1; "gamble"
# (action 1) pays 10 with probability 0.1 (reaching e_2) and 0 otherwise (e_3); both
# end the game. The best action is the gamble, worth 1.0; its most likely outcome is 0.

P_WIN, WIN, SAFE = 0.1, 10.0, 0.5


def _gamble_batch(n=160):
    """The gamble's games under uniformly random play, each outcome at its exact
    frequency (half the games safe, a tenth of the gambles won), unrolled K = 2 steps:
    the step, then one step of the absorbing state after the end (reward 0, value 0).

    Policy targets put the root's prior on the gamble (what a converged search gives);
    the step's code target is the observation it reached (the absorbing step's code is
    masked, as the extension masks codes past an episode's end)."""
    index = jnp.arange(n)
    action = (index >= n // 2).astype(jnp.int32)
    after = index % 2
    win = (action == 1) & (index - n // 2 < round(P_WIN * n / 2))
    reward = jnp.where(action == 0, SAFE, jnp.where(win, WIN, 0.0))
    reached = jax.nn.one_hot(jnp.where(action == 0, 1, jnp.where(win, 2, 3)), OBS)
    zeros, ones = jnp.zeros(n), jnp.ones(n)
    policy = jnp.stack([jnp.tile(jnp.array([0.0, 1.0]), (n, 1))]
                       + [jnp.full((n, A), 0.5)] * 2, 1)
    targets = Targets(
        actions=jnp.stack([action, after], 1), value=jnp.stack([reward, zeros, zeros], 1),
        value_mask=jnp.ones((n, 3)), reward=jnp.stack([reward, zeros], 1),
        reward_mask=jnp.ones((n, 2)), policy=policy,
        policy_mask=jnp.stack([ones, zeros, zeros], 1),
        extra={"chance_observation": jnp.stack([reached, reached], 1),
               "chance_mask": jnp.stack([ones, zeros], 1)})
    obs = jnp.tile(jax.nn.one_hot(0, OBS), (n, 1))
    return Batch(observation=obs, targets=targets, weight=jnp.ones(n))


@pytest.fixture(scope="module")
def gamble():
    """A stochastic model trained on the gamble, and its config."""
    cfg = _toy_config()
    model = StochasticModel(cfg, A, (OBS,))
    learner = Learner(model, cfg.learner, cfg.loss, extensions.active(cfg))

    @jax.jit
    def train(state):
        def step(state, _):
            return learner.step(state, _gamble_batch())[0], None

        return jax.lax.scan(step, state, None, length=1000)[0]

    state = train(learner.init(model.init(jax.random.key(0))))
    return cfg, model, state.params


@pytest.mark.parametrize("policy", ["stochastic", "stochastic_gumbel"])
def test_the_gamble_is_searched_at_its_expectation(gamble, policy):
    cfg, model, params = gamble
    obs = jax.nn.one_hot(jnp.zeros((1,), jnp.int32), OBS)
    # The gamble ends the episode: a tree of its one decision and one chance level
    # (max_depth 2) holds all there is, and no guesses of the model past the end. The
    # chance node visits outcomes in proportion to sigma, so one visit of the win moves
    # the estimate by WIN / N: 1,000 simulations (Gumbel's halving gives the gamble
    # about half) keep that near 1%.
    cfg = cfg.replace(max_depth=2, num_simulations=1000, policy=policy)
    tree_fns = search.tree_recurrent_fn(model, discount=1.0, chance_nodes=True)

    @jax.jit
    def run(params, key):
        root = model.initial_inference(params, obs)
        return search.POLICIES[policy](
            cfg.search, params, key,
            mctx.RootFnOutput(prior_logits=root.policy_logits, value=root.value,
                              embedding=root.state),
            tree_fns, Exploration.greedy(), None)

    out = run(params, jax.random.key(2))
    expectation = P_WIN * WIN
    assert int(out.action[0]) == 1  # the gamble, though its likely outcome is 0 < 0.5
    assert float(out.action_weights[0, 1]) > 0.5
    q_gamble = float(out.search_tree.qvalues(jnp.zeros((1,), jnp.int32))[0, 1])
    assert abs(q_gamble - expectation) <= 0.02 * expectation
    if policy == "stochastic":  # PUCT spends nearly every simulation on the gamble
        root_value = float(out.search_tree.node_values[0, 0])
        assert abs(root_value - expectation) <= 0.02 * expectation


def test_the_gamble_s_outcomes_are_two_codes_at_their_odds(gamble):
    """sigma at afterstate (s0, gamble) puts 0.1 and 0.9 on two codes, leading to rewards
    10 and 0: the model holds the distribution of outcomes. One next state for (s0,
    gamble), which is all a deterministic g has, takes one of them (here the likely
    one, reward 0; plain MuZero's g a blur of both): docs/stochastic.md."""
    _, model, params = gamble
    s0 = model.initial_inference(params, jax.nn.one_hot(jnp.zeros((1,), jnp.int32), OBS)).state
    after, chance_logits, _ = model.afterstate(params, s0, jnp.array([1]))
    sigma = np.asarray(jax.nn.softmax(chance_logits[0]))
    top = np.argsort(sigma)[::-1][:2]
    np.testing.assert_allclose(sigma[top], [1 - P_WIN, P_WIN], atol=0.03)
    rewards = model.chance(params, jnp.repeat(after, 2, 0), jax.nn.one_hot(top, C)).reward
    np.testing.assert_allclose(rewards, [0.0, WIN], atol=0.1)
    likely = model.recurrent_inference(params, s0, jnp.array([1]))
    np.testing.assert_allclose(likely.reward, [0.0], atol=0.1)


# --- pgx 2048 and backgammon ----------------------------------------------------------

def test_2048_is_one_player_and_pays_the_merged_tiles():
    env = mz.envs.make(Config().replace(env="pgx/2048"))
    spec = env.spec
    assert (spec.observation_shape, spec.num_actions) == ((4, 4, 31), 4)
    assert not spec.two_player and spec.legal_actions and spec.max_abs_reward is None
    inner, _ = env.initial(jax.random.key(0))
    # Rows (2, 2, 0, 0) and (4, 4, 4, 0) slid left: 2+2 -> 4 and 4+4 -> 8 (the third 4
    # stays), 12 in all; then one new tile lands.
    board = jnp.zeros(16, jnp.int32).at[jnp.array([0, 1, 4, 5, 6])].set(
        jnp.array([1, 1, 2, 2, 2]))
    inner = inner.replace(_board=board, legal_action_mask=jnp.ones(4, bool))
    out = jax.jit(env.transition)(inner, jnp.int32(0), jax.random.key(1))
    assert float(out.reward) == 12.0
    assert int(jnp.sum(out.inner._board > 0)) == 3 + 1
    assert sorted(np.asarray(out.inner._board[:7]).tolist())[-3:] == [2, 2, 3]


def test_backgammon_plies_alternate_with_forced_passes_inside_a_turn():
    """pgx keeps the turn for each die; the adapter gives the other player a forced pass
    (one legal action, reward 0, no dice on its board) so that players alternate, and
    the pass hands back the very state the turn continues from."""
    env = mz.envs.make(Config().replace(env="pgx/backgammon"))
    step = jax.jit(env.transition)
    inner, _ = env.initial(jax.random.key(0))
    key, players, passes = jax.random.key(1), [], 0
    for _ in range(24):
        key, act_key, step_key = jax.random.split(key, 3)
        legal = env.legal_action_mask(inner)
        players.append(int(env.current_player(inner)))
        if bool(inner.passing):
            passes += 1
            assert legal.tolist() == [True] + [False] * 155
        action = jax.random.categorical(act_key, jnp.where(legal, 0.0, -jnp.inf))
        out = step(inner, action, step_key)
        if bool(inner.passing):
            assert float(out.reward) == 0.0
            np.testing.assert_array_equal(out.inner.game._board, inner.game._board)
            np.testing.assert_array_equal(out.observation, inner.game.observation)
        elif bool(out.inner.passing):
            np.testing.assert_array_equal(out.observation[-6:], 0)  # no dice to play
        inner = out.inner
    assert all(a != b for a, b in zip(players, players[1:], strict=False))
    assert passes >= 4


def test_backgammon_is_two_player_with_gammons_on_the_reward_support():
    env = pgx_env.PgxEnv("backgammon")
    assert env.spec.two_player and env.spec.max_abs_reward == 3.0
    assert env.spec.num_actions == 156
    config = mz.PRESETS["backgammon"]()
    assert (config.network.chance_outcomes, config.search.policy) == (32, "stochastic")
    validate(config, max_abs_reward=3.0, observation_shape=env.spec.observation_shape,
             num_actions=156)


def test_2048_preset_is_the_default_for_its_env_and_plain_is_one_flag_away():
    from muzero_jax.experiment import preset_for_env

    assert preset_for_env("pgx/2048") == "2048"
    assert preset_for_env("pgx/backgammon") == "backgammon"
    stochastic = mz.PRESETS["2048"]()
    plain = stochastic.replace(chance_outcomes=0, policy="muzero")
    validate(plain)
    assert (plain.network.hidden_size, plain.search.num_simulations) == (
        stochastic.network.hidden_size, stochastic.search.num_simulations)
    assert plain.network.kind == stochastic.network.kind == "conv_mlp"
    # The chance machinery goes; the reward labels of unplayed moves stay with both.
    assert sorted(type(e).__name__ for e in extensions.active(stochastic)) == [
        "Counterfactual", "Stochastic"]
    assert [type(e).__name__ for e in extensions.active(plain)] == ["Counterfactual"]


def test_a_conv_h_reads_the_board_and_the_other_steps_stay_mlps():
    from muzero_jax.stochastic import StochasticModel

    config = Config().replace(
        network=dict(kind="conv_mlp", resnet_channels=4, representation_blocks=(1, 0, 0),
                     hidden_size=8, latent_size=8, num_hidden_layers=1, chance_outcomes=3),
        search=dict(policy="stochastic"))
    validate(config, observation_shape=(4, 4, 5), num_actions=4)
    model = StochasticModel(config.network, 4, (4, 4, 5))
    # Jitted: op by op, each of the networks' ops would compile alone.
    params = jax.jit(model.init)(jax.random.key(0))["params"]
    # A 3x3 stem of 5 planes into 4 channels, one residual block, a dense layer over the
    # 4x4x4 board into the latent; the encoder still reads the flat planes.
    h = params["representation"]
    assert h["Conv_0"]["kernel"].shape == (3, 3, 5, 4)
    assert h["Dense_0"]["kernel"].shape == (4 * 4 * 4, 8)
    assert params["encoder"]["MLP_0"]["Dense_0"]["kernel"].shape == (4 * 4 * 5, 8)
    root = jax.jit(model.initial_inference)({"params": params}, jnp.ones((2, 4, 4, 5)))
    assert root.state.shape == (2, 8) and root.policy_logits.shape == (2, 4)


@pytest.mark.parametrize("afterstate_reward", [True, False])
def test_an_afterstate_reward_does_not_read_the_code(afterstate_reward):
    from muzero_jax.stochastic import StochasticModel

    config = Config().replace(
        network=dict(hidden_size=8, latent_size=8, num_hidden_layers=1, chance_outcomes=3,
                     afterstate_reward=afterstate_reward), search=dict(policy="stochastic"))
    validate(config)
    model = StochasticModel(config.network, 2, (5,))
    params = jax.jit(model.init)(jax.random.key(0))  # op by op, each op would compile alone
    chance = jax.jit(model.chance)
    # Random weights everywhere (the reward head starts at zero, paying 0 whatever it reads).
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [jax.random.normal(jax.random.key(i), x.shape)
                                       for i, x in enumerate(leaves)])
    after = jax.random.uniform(jax.random.key(9), (4, 8))
    codes = jnp.eye(3)[jnp.array([0, 1, 2, 0])]
    out = chance(params, after, codes)
    rolled = chance(params, after, jnp.roll(codes, 1, axis=-1))
    assert not np.allclose(out.state, rolled.state)
    if afterstate_reward:
        np.testing.assert_array_equal(out.reward, rolled.reward)
    else:
        assert not np.allclose(out.reward, rolled.reward)


def test_an_afterstate_reward_needs_afterstates():
    with pytest.raises(ConfigError, match="afterstate_reward=True: only a stochastic"):
        validate(Config().replace(afterstate_reward=True))


def _smoke(preset: str, tmp_path):
    config = mz.PRESETS[preset](
        acting=dict(num_envs=4, rollout_length=8),
        network=dict(hidden_size=16, latent_size=16, num_hidden_layers=1),
        search=dict(num_simulations=4), replay=dict(capacity=4 * 64, min_size=32),
        loss=dict(td_steps=3, unroll_steps=2),
        learner=dict(batch_size=8, updates_per_iteration=2),
        run=dict(total_env_steps=4 * 8 * 6, eval_every=0))
    from muzero_jax.train import train

    result = train(config, log=None, run_dir=str(tmp_path / preset))
    metrics = result.history[-1]
    assert result.env_steps == 4 * 8 * 6 and result.train_steps > 0
    for name in ("chance_loss", "commitment_loss", "afterstate_value_loss", "loss"):
        assert np.isfinite(metrics[name]), name
    assert (tmp_path / preset / "config.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["2048", "backgammon"])
def test_a_tiny_run_of_the_preset_ends_to_end(preset, tmp_path):
    _smoke(preset, tmp_path)


# --- the 2048 benchmark's pieces -----------------------------------------------------

@pytest.mark.parametrize("variant", ["stochastic_gumbel", "alphazero"])
def test_the_2048_benchmark_plays_greedy_games_to_their_end(variant):
    from benchmarks import game2048
    from muzero_jax import cli

    config = cli.parse_config(["--preset", "2048", *game2048.VARIANTS[variant],
                               "--network.hidden_size", "8", "--network.latent_size", "8",
                               "--network.num_hidden_layers", "1",
                               "--search.num_simulations", "2"])
    agent = mz.Agent(config)
    scores, tiles = game2048.greedy_games(agent, agent.init(jax.random.key(0)), 3, seed=1)
    assert scores.shape == tiles.shape == (3,)
    # Every game ended (a 2048 game from two tiles merges at least up to a 16 before it
    # can lock), its score a sum of merged tiles, each an even number >= 4.
    assert np.all(tiles >= 16) and np.all(np.log2(tiles) % 1 == 0)
    assert np.all(scores >= tiles) and np.all(scores % 4 == 0)


@pytest.mark.parametrize("variant", ["stochastic", "plain"])
def test_the_2048_model_check_of_an_untrained_model(variant):
    from benchmarks import game2048, model_2048
    from muzero_jax import cli

    config = cli.parse_config(["--preset", "2048", *game2048.VARIANTS[variant],
                               "--network.hidden_size", "8", "--network.latent_size", "8",
                               "--network.num_hidden_layers", "1"])
    agent = mz.Agent(config)
    record = model_2048.check_params(agent, jax.jit(agent.init)(jax.random.key(0)).params, 60)
    assert record["model"] == variant and 0 < record["positions"] <= 60
    assert record["legal_moves"] > record["positions"] and record["mean_reward"] > 0
    # Zero-initialised reward heads pay 0 for every move (sigma's expectation included):
    # the error is the mean reward itself, up to float32's rounding of the expectation
    # over the uniform support (3e-5 on some CPUs: the summation order is XLA's choice).
    assert record["reward_mae"] == pytest.approx(record["mean_reward"], abs=1e-3)
    assert 0 < record["best_move_by_chance"] < 1 and 0 <= record["best_move"] <= 1
    if variant == "stochastic":
        assert record["teacher_forced_mae"] == pytest.approx(record["mean_reward"], abs=1e-3)
        # and zero-initialised sigma heads are uniform over the codes.
        codes = config.network.chance_outcomes
        assert record["sigma_on_code"] == pytest.approx(1 / codes, rel=1e-5)
        assert 1 <= record["codes_used"] <= codes
        assert record["sigma_on_used"] == pytest.approx(record["codes_used"] / codes, rel=1e-5)


def test_the_2048_table_counts_tiles_and_gives_both_verdicts():
    from benchmarks import game2048

    def run(variant, seed, score, tiles):
        return {"variant": variant, "seed": seed, "final_eval_return": score,
                "final_eval_std": 1.0, "wall_seconds": 100.0 + seed, "env_steps": 10,
                "tiles": {"mean_score": score, "highest_tile": tiles}, "curve": []}

    random = {"mean_score": 1000.0, "std_score": 500.0, "games": 200,
              "highest_tile": {"32": 10, "64": 90, "128": 90, "256": 10}}
    runs = [run("stochastic", 0, 4500.0, {"256": 40, "512": 50, "1024": 10}),
            run("stochastic", 1, 3000.0, {"128": 1, "256": 99}),
            run("plain", 0, 4600.0, {"512": 100}), run("plain", 1, 2000.0, {"64": 100}),
            run("stochastic_gumbel", 0, 5000.0, {"512": 100}),
            run("plain_gumbel", 0, 4900.0, {"512": 100})]
    assert game2048._tile_cells(random["highest_tile"]) == ["190", "10", "0", "0", "0"]
    assert game2048._tile_cells({"4096": 2, "2048": 3}) == ["0", "0", "0", "0", "5"]
    table = "\n".join(game2048.markdown({"config": "c", "baselines": {"random": random},
                                         "runs": runs,
                                         "variant_flags": {}, "plot": "p.png"}))
    assert "| stochastic | 4,500 +- 1 | 3,000 +- 1 | 3,750 | 100-101 |" in table
    assert "- bar: 4x the random player, 4,000" in table
    assert "- stochastic at or above the bar: 1/2 seeds" in table
    assert "- stochastic above plain: 1/2 seeds" in table
    assert "- stochastic_gumbel at or above the bar: 1/1 seeds" in table
    assert "- stochastic_gumbel above plain_gumbel: 1/1 seeds" in table
    assert "| stochastic | 0 | 4,500 | 0 | 40 | 50 | 10 | 0 |" in table
    assert "| random legal player (200 games) | - | 1,000 | 190 | 10 | 0 | 0 | 0 |" in table


def test_a_benchmark_refuses_to_read_a_finished_run_of_another_config(tmp_path):
    import dataclasses
    import json

    from benchmarks import minatar
    from muzero_jax import cli

    run = tmp_path / "run"
    run.mkdir()
    config = dataclasses.asdict(cli.parse_config(["--preset", "2048", "--run.seed", "1"]))
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text("{}")
    steps = config["run"]["total_env_steps"]
    assert minatar.finished(str(run), "pgx/2048", steps, 1, ("--preset", "2048"))
    # A run made before a field existed is read: the field's default is what it ran.
    del config["network"]["afterstate_reward"]
    (run / "config.json").write_text(json.dumps(config))
    assert minatar.finished(str(run), "pgx/2048", steps, 1, ("--preset", "2048"))
    # A whole stage missing is not a field added later: it is refused.
    (run / "config.json").write_text(json.dumps({k: v for k, v in config.items()
                                                 if k != "network"}))
    with pytest.raises(RuntimeError, match="network: None, expected the stage's fields"):
        minatar.finished(str(run), "pgx/2048", steps, 1, ("--preset", "2048"))
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="network.chance_outcomes: 8, expected 0"):
        minatar.finished(str(run), "pgx/2048", steps, 1,
                         ("--preset", "2048", "--network.chance_outcomes", "0",
                          "--search.policy", "muzero"))
