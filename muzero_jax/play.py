"""Play a trained board-game agent in the terminal: `python -m muzero_jax.play RUN_DIR`.

    python -m muzero_jax.play RUN_DIR [--second] [--svg FILE] [--seed S]

Loads the run's config.json and latest checkpoint (a `pgx/<game>` run of
experiments/board.py), draws the board after every move, lists the legal moves
and reads yours; input that is not a legal move number is asked again (end of
input or `q` quits). The agent answers with its greedy search. `--svg FILE`
writes the game, one frame per ply, with pgx's renderer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import checkpoint, opponents
from muzero_jax.agent import Agent
from muzero_jax.config import ConfigError


def draw(state) -> str:
    """A text board of one pgx state: `X` the player to move's stones, `O` the other's.

    Boards come from pgx's observation (planes 0 and 1: the mover's and the
    opponent's pieces for tic-tac-toe, connect four, othello and Go); other games
    (chess) print the legal-move count only; `--svg` draws them properly.
    """
    obs = np.asarray(state.observation)
    if obs.ndim != 3 or obs.shape[-1] < 2 or state.env_id == "chess":
        return f"({state.env_id}: use --svg for a picture)"
    mine, theirs = obs[..., 0] > 0, obs[..., 1] > 0
    rows = []
    width = obs.shape[1]
    for r in range(obs.shape[0]):
        cells = ["X" if mine[r, c] else "O" if theirs[r, c] else "." for c in range(width)]
        rows.append(" ".join(cells) + f"   {r * width:>3}-{r * width + width - 1}")
    return "\n".join(rows)


def ask_move(legal: np.ndarray, read: Callable[[str], str], write: Callable[[str], None]
             ) -> int | None:
    """The human's move: asks until a legal move number is given; None to quit."""
    moves = np.flatnonzero(legal)
    while True:
        write(f"legal moves: {' '.join(map(str, moves))}")
        try:
            text = read("your move> ").strip()
        except EOFError:
            return None
        if text.lower() in ("q", "quit", "exit"):
            return None
        try:
            move = int(text)
        except ValueError:
            write(f"{text!r} is not a move number")
            continue
        if 0 <= move < len(legal) and legal[move]:
            return move
        write(f"{move} is not a legal move")


def play_game(agent: Agent, params, *, human_first: bool = True, seed: int = 0,
              read: Callable[[str], str] = input, write: Callable[[str], None] = print):
    """Plays one game, the human against the agent. Returns (the states played, the
    human's result: +1 win, 0 draw, -1 loss, or None if the human quit)."""
    game = agent.env.pgx_env
    policy = jax.jit(opponents.agent_player(agent))
    step = jax.jit(game.step)
    key = jax.random.key(seed)
    state = jax.jit(game.init)(key)
    human = int(state.current_player) if human_first else 1 - int(state.current_player)
    states = [state]
    write(f"you are X when you move (you move {'first' if human_first else 'second'})")
    while not bool(state.terminated | state.truncated):
        if int(state.current_player) == human:
            write(draw(state))
            move = ask_move(np.asarray(state.legal_action_mask), read, write)
            if move is None:
                return states, None
        else:
            key, sub = jax.random.split(key)
            batch = jax.tree.map(lambda x: x[None], state)
            move = int(policy(params, sub, batch)[0])
            write(f"agent plays {move}")
        state = step(state, jnp.int32(move))
        states.append(state)
    result = float(state.rewards[human])
    write(draw(state))
    write({1.0: "you win", 0.0: "draw", -1.0: "the agent wins"}[result])
    return states, result


def save_svg(states, path: str) -> None:
    """The game as an SVG animation, one frame per ply (pgx's renderer)."""
    import pgx

    pgx.save_svg_animation(states, path, frame_duration_seconds=0.8)


PROG = "python -m muzero_jax.play"


def main(argv: list[str] | None = None) -> int:
    """`python -m muzero_jax.play RUN_DIR ...`; bad input and faults exit with one line
    (code 2, or the fault's), or with `--debug` their traceback."""
    from muzero_jax import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    with cli.one_line_errors(cli.debugging(argv), prog=PROG):
        return _main(argv)


def _main(argv: list[str]) -> int:
    import importlib.util

    from muzero_jax import cli

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a pgx/<game> run directory (experiments/board.py)")
    parser.add_argument("--second", action="store_true", help="let the agent move first")
    parser.add_argument("--svg", metavar="FILE", default=None, help="write the game as SVG")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    # Checked before the game, whose moves would otherwise be lost to a failed write.
    if args.svg:
        if importlib.util.find_spec("svgwrite") is None:
            raise ConfigError("--svg needs svgwrite (pgx's renderer): pip install svgwrite")
        cli.check_output_file("--svg", args.svg)
    config = checkpoint.load_config(args.run_dir)
    if not config.env.id.startswith("pgx/"):
        raise ConfigError(f"{args.run_dir}: env {config.env.id!r}; expected a pgx/<game> run "
                          "(experiments/board.py)")
    try:
        agent = Agent(config)
    except ConfigError:
        raise
    except ValueError as e:  # an env that cannot be built as the run's config says
        raise ConfigError(f"{args.run_dir}: env {config.env.id!r}: {e}") from e
    _, state = checkpoint.restore_train_state(args.run_dir, agent.init(jax.random.key(0)))
    states, _ = play_game(agent, state.params, human_first=not args.second, seed=args.seed)
    if args.svg:
        save_svg(states, args.svg)
        print(f"svg: {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
