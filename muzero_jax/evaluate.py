"""Greedy evaluation, on our JAX environments and on Gymnasium's own.

`evaluate_jax` runs the compiled self-play rollout with greedy exploration and
reads off each environment's first episode (counting later, shorter episodes
would bias the mean downwards). `evaluate_gymnasium` plays
`gymnasium.make(env_id)` instances from the host, one jitted batched search per
step, so a result can be checked against the reference implementation.

From the command line, on a run directory written by training:

    python -m muzero_jax.evaluate RUN_DIR [--episodes N] [--video] [--tree-png FILE]

loads the latest checkpoint, plays N greedy episodes of the run's env in its
Gymnasium form (`--env` names another; envs without one, such as gymnax games,
are played as they trained) and prints their mean and std return; `--video`
records one episode as an MP4 (Gymnasium's `RecordVideo`, which needs moviepy;
CartPole's renderer needs pygame) and `--tree-png` draws the search tree of the
episode's first decision.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys

import gymnasium as gym
import jax
import numpy as np

from muzero_jax import sampled
from muzero_jax.agent import Agent
from muzero_jax.config import Config, ConfigError
from muzero_jax.envs.gymnasium_host import action_map, describe_space, gymnasium_spec
from muzero_jax.learner import TrainState

VIDEO_INSTALL = "pip install moviepy==2.2.1 pygame==2.6.1"


def evaluate_jax(agent: Agent, state: TrainState, key: jax.Array,
                 num_episodes: int) -> np.ndarray:
    """Returns of `num_episodes` greedy episodes on the agent's own env. `[E]` float.

    Plays fresh envs through the agent's actor (JAX or host, with its frame history),
    counting each env's first episode. A JAX actor's rollout is compiled for
    `config.acting.num_envs` envs, so its episodes come that many at a time; a host actor
    plays all of them side by side, since its cost is one search call per step and a
    search's cost grows far slower than its batch (Acrobot's 32 episodes of 500 steps:
    one set instead of two halves the calls; the search compiles once more, for that
    batch).
    """
    cfg = agent.config
    num_envs = num_episodes if agent.host else cfg.acting.num_envs
    chunk = cfg.acting.rollout_length
    # An env without a time limit gets one here, so an evaluation always ends.
    max_chunks = math.ceil((agent.spec.max_episode_steps or 100_000) / chunk) + 1
    returns = []
    for _ in range(math.ceil(num_episodes / num_envs)):
        key, reset_key = jax.random.split(key)
        env_state = agent.reset(reset_key, num_envs)
        first = np.full(num_envs, np.nan)
        for _ in range(max_chunks):
            key, rollout_key = jax.random.split(key)
            env_state, traj = agent.rollout(state, env_state, rollout_key, greedy=True)
            done = np.asarray(traj.terminated | traj.truncated)
            episode_return = np.asarray(traj.episode_return)
            for b in np.flatnonzero(np.isnan(first) & done.any(axis=1)):
                first[b] = episode_return[b, np.argmax(done[b])]
            if not np.isnan(first).any():
                break
        returns.append(first)
    return np.concatenate(returns)[:num_episodes]


def played_actions(out) -> np.ndarray:
    """The env actions a search output plays: its `action` (`[B]`, or `[]` for one
    observation), or with sampled search (`out.root_actions`, the root's K samples
    `[B, K, D]` or `[B, K]`) the sample at that index: `[B, D]` floats for a Box env."""
    return sampled.host_actions(out.root_actions, out.action)


def evaluate_gymnasium(agent: Agent, state: TrainState, env_id: str, num_episodes: int,
                       *, seed: int = 0, key: jax.Array | None = None) -> np.ndarray:
    """Returns of `num_episodes` greedy episodes of `gymnasium.make(env_id)`. `[E]` float.

    All episodes run side by side; each step searches the whole batch at once
    (finished episodes keep a stale observation whose action is ignored), so the
    search compiles once for batch `num_episodes`. The actions played
    (`played_actions`: `[E]` indices, a Box env's `[E, D]` vectors) reach the env as
    training's did (`gymnasium_host.ActionMap`: a Discrete space's start added, a Box's
    bounds clipped).
    """
    key = jax.random.key(seed) if key is None else key
    games = [gym.make(env_id) for _ in range(num_episodes)]
    to_env = action_map(games[0].action_space, env_id)
    # Observations keep their dtype: `act` scales uint8 frames as training did.
    obs = np.stack([np.asarray(g.reset(seed=seed + i)[0]) for i, g in enumerate(games)])
    returns = np.zeros(num_episodes)
    active = np.ones(num_episodes, bool)
    while active.any():
        key, act_key = jax.random.split(key)
        actions = played_actions(agent.act(state, act_key, obs, greedy=True))
        for i in np.flatnonzero(active):
            o, r, terminated, truncated, _ = games[i].step(to_env.one(actions[i]))
            obs[i] = o
            returns[i] += r
            active[i] = not (terminated or truncated)
    for g in games:
        g.close()
    return returns


def evaluate_final(agent: Agent, state: TrainState, config: Config,
                   num_episodes: int | None = None) -> tuple[np.ndarray, str]:
    """The end-of-run greedy evaluation on the env the user named. Returns (`[E]` returns, label).

    An env with a Gymnasium form (`spec.eval_id`: jax/CartPole-v1's twin CartPole-v1, a
    Gymnasium id itself) is played on `gymnasium.make(eval_id)`, the reference
    implementation; every other env (ALE with its frame history, gymnax envs without
    a twin) on fresh instances of itself through the agent's actor. `num_episodes`
    defaults to config.run.final_eval_episodes; episode seeds and keys start at
    10,000 + config.run.seed, apart from training's.
    """
    num_episodes = num_episodes or config.run.final_eval_episodes
    spec = agent.spec
    # A frame history lives in the actor, so such envs are played through it.
    if spec.eval_id is not None and not config.env.history_length:
        returns = evaluate_gymnasium(agent, state, spec.eval_id, num_episodes,
                                     seed=10_000 + config.run.seed)
        return returns, f"gymnasium {spec.eval_id}"
    returns = evaluate_jax(agent, state, jax.random.key(10_000 + config.run.seed), num_episodes)
    return returns, spec.env_id


def solve_threshold(agent: Agent, config: Config) -> float | None:
    """The return that counts as solved: Gymnasium's reward_threshold for the evaluated
    env where it has one (CartPole-v1: 475, Acrobot-v1: -100), else config.run.solve_return."""
    env_id = agent.spec.eval_id or agent.spec.env_id
    try:
        threshold = gym.spec(env_id).reward_threshold
    except gym.error.Error:
        threshold = None
    return threshold if threshold is not None else config.run.solve_return


def record_video(agent: Agent, state: TrainState, env_id: str, video_dir: str, *,
                 seed: int = 0, key: jax.Array | None = None) -> tuple[str, float]:
    """Plays one greedy episode of `gymnasium.make(env_id)` and records it as an MP4.

    Returns the video's path and the episode's return.
    """
    key = jax.random.key(seed) if key is None else key
    # pygame renders off-screen; without these SDL looks for a display and complains.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = gym.wrappers.RecordVideo(
        gym.make(env_id, render_mode="rgb_array"), video_dir, name_prefix="eval",
        episode_trigger=lambda episode: episode == 0, disable_logger=True)
    to_env = action_map(env.action_space, env_id)
    obs, _ = env.reset(seed=seed)
    episode_return, done = 0.0, False
    while not done:
        key, act_key = jax.random.split(key)
        action = played_actions(agent.act(state, act_key, obs, greedy=True))
        obs, reward, terminated, truncated, _ = env.step(to_env.one(action))
        episode_return += float(reward)
        done = terminated or truncated
    env.close()
    return os.path.join(video_dir, "eval-episode-0.mp4"), episode_return


def draw_search_tree(agent: Agent, state: TrainState, env_id: str, png_path: str, *,
                     seed: int = 0) -> str:
    """Draws the greedy search tree of the first decision of `gymnasium.make(env_id)`."""
    from muzero_jax import treeviz

    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    env.close()
    key = jax.random.key(seed)
    tree = agent.search_tree(state, key, np.asarray(obs, np.float32)[None])
    # The root's child played (with sampled search: the index of the chosen sample).
    action = int(agent.act(state, key, obs, greedy=True).action)
    return treeviz.render_png(treeviz.tree_to_graph(tree, chosen_action=action), png_path)


def check_env_fits(agent: Agent, env_id: str) -> None:
    """Raises `ConfigError` unless `gymnasium.make(env_id)` acts as the agent's env does
    (as many discrete actions; a Box env: a Box of D dimensions with the same bounds) and
    observes what its networks take (`agent.observation_shape`)."""
    gymnasium_spec(env_id)  # an unknown id, or a module that does not import
    env = gym.make(env_id)
    try:
        observations, actions = env.observation_space, env.action_space
    finally:
        env.close()
    shape = tuple(observations.shape or ())
    if _same_actions(agent.spec, actions) and shape == tuple(agent.observation_shape):
        return
    observed = (f"shape {shape}" if isinstance(observations, gym.spaces.Box)
                else describe_space(observations))
    spec = agent.spec
    acts = (f"{spec.action_dim}-dimensional actions within low {list(spec.action_low)}, "
            f"high {list(spec.action_high)}" if spec.continuous
            else f"{agent.num_actions} discrete actions")
    raise ConfigError(
        f"--env {env_id}: observes {observed} and acts in {describe_space(actions)}; the "
        f"run's networks (trained on {agent.config.env.id}) take observations of shape "
        f"{tuple(agent.observation_shape)} and {acts}; expected an env with those"
        + (" (a run with a frame history plays its own env: leave out --env)"
           if agent.config.env.history_length else ""))


def _same_actions(spec, space: gym.Space) -> bool:
    """Whether `space` is the action space `spec` describes: Discrete with as many
    actions, or (a Box env) a float Box whose flattened bounds are the spec's."""
    if not spec.continuous:
        return isinstance(space, gym.spaces.Discrete) and int(space.n) == spec.num_actions
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        return False
    low, high = np.ravel(space.low), np.ravel(space.high)
    return (low.size == spec.action_dim and np.array_equal(low, spec.action_low)
            and np.array_equal(high, spec.action_high))


PROG = "python -m muzero_jax.evaluate"


def main(argv: list[str] | None = None) -> int:
    """`python -m muzero_jax.evaluate RUN_DIR ...`; bad input and faults exit with one
    line (code 2, or the fault's), or with `--debug` their traceback."""
    from muzero_jax import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    with cli.one_line_errors(cli.debugging(argv), prog=PROG):
        return _main(argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    _check_tools(args)
    config, agent, step, runs = load_runs(args.run_dir, args.run)
    # The Gymnasium env to play: --env, else the run's env's Gymnasium form, if it has one.
    env_id = args.env or (agent.spec.eval_id if not config.env.history_length else None)
    if env_id is None and (args.video or args.tree_png):
        raise ConfigError(f"--video and --tree-png play a Gymnasium env; {config.env.id!r} has "
                          "no Gymnasium form: name one with --env")
    if env_id is not None:
        check_env_fits(agent, env_id)
    for run, state in runs:
        if env_id is None:
            returns = evaluate_jax(agent, state, jax.random.key(args.seed), args.episodes)
        else:
            returns = evaluate_gymnasium(agent, state, env_id, args.episodes, seed=args.seed)
        label = f"{run['name']}: " if len(runs) > 1 or args.run else ""
        print(f"{label}{env_id or config.env.id}: checkpoint {step} ({int(state.step)} updates): "
              f"return {np.mean(returns):.1f} +- {np.std(returns):.1f} over {len(returns)} "
              f"greedy episodes (min {np.min(returns):.0f}, max {np.max(returns):.0f})")
    state = runs[0][1]  # the video and the tree: the first run's (or --run's)
    if args.video:
        video_dir = args.video_dir or os.path.join(args.run_dir, "videos")
        path, episode_return = record_video(agent, state, env_id, video_dir, seed=args.seed)
        print(f"video: {path} (return {episode_return:.0f})")
    if args.tree_png:
        path = draw_search_tree(agent, state, env_id, args.tree_png, seed=args.seed)
        print(f"search tree: {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from muzero_jax import cli

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Greedy evaluation of a run's latest checkpoint on the Gymnasium env.")
    parser.add_argument("run_dir", help="a run directory written by training (its config.json "
                        "and checkpoints/)")
    parser.add_argument("--episodes", type=int, default=10,
                        help="greedy episodes to play (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed (default 0)")
    parser.add_argument("--env", default=None,
                        help="Gymnasium env id (default: the run's env.id)")
    parser.add_argument("--run", default=None,
                        help="in a directory trained with --seeds or --sweep, the run to "
                        "evaluate, by name (e.g. seed3; default: each run in turn)")
    parser.add_argument("--video", action="store_true",
                        help="record one greedy episode as an MP4 (needs moviepy: "
                        f"{VIDEO_INSTALL})")
    parser.add_argument("--video-dir", default=None,
                        help="where the MP4 goes (default RUN_DIR/videos)")
    parser.add_argument("--tree-png", metavar="FILE", default=None,
                        help="draw the search tree of the first decision into FILE (needs "
                        "Graphviz: apt-get install graphviz; pip install graphviz)")
    cli.add_debug_flag(parser)
    return parser


def _check_tools(args: argparse.Namespace) -> None:
    # Bad counts and missing tools fail here, before anything is loaded or compiled.
    import shutil

    from muzero_jax import cli, treeviz

    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: expected an integer >= 1")
    if args.video and importlib.util.find_spec("moviepy") is None:
        raise ConfigError(f"--video needs moviepy (Gymnasium's RecordVideo encodes with it); "
                          f"install it with: {VIDEO_INSTALL}")
    if args.tree_png:
        if importlib.util.find_spec("graphviz") is None or shutil.which("dot") is None:
            raise ConfigError(f"--tree-png: {treeviz.INSTALL}")
        cli.check_output_file("--tree-png", args.tree_png)


def load_runs(run_dir: str, run_name: str | None):
    """(config, agent, checkpoint step, [(run, TrainState)]) of a run directory's latest
    checkpoint: every run it holds, or only `run_name`."""
    from muzero_jax import checkpoint

    config = checkpoint.load_config(run_dir)
    try:
        agent = Agent(config)
    except ConfigError:
        raise
    except ValueError as e:  # an env that cannot be built as the run's config says
        raise ConfigError(f"{run_dir}: env {config.env.id!r}: {e}") from e
    step, runs = checkpoint.restore_train_states(run_dir, agent.init(jax.random.key(0)))
    if run_name is not None:
        names = [run["name"] for run, _ in runs]
        if run_name not in names:
            raise ConfigError(f"--run {run_name!r}: the checkpoint holds runs {names}")
        runs = [runs[names.index(run_name)]]
    return config, agent, step, runs


if __name__ == "__main__":
    sys.exit(main())
