"""How well a trained 2048 model knows the slide: its one-move rewards against pgx's.

    python -m benchmarks.model_2048 RUN_DIR [--states 2048] [--seed 0]

A search over a learned model can only prefer a move the model tells apart. This
reads a run directory's latest parameters (a `--preset 2048` run, stochastic or
plain), plays random legal moves from fresh games and keeps a position every 10
plies, and compares the model's reward for each legal move from each position with
the reward of pgx's own step (the merged tiles; the tile that lands after the move
does not change it):

- `reward_mae`: the mean absolute error over legal moves, beside `mean_reward`;
- `best_move`: over positions whose legal moves merge differently, the fraction where
  the move the model pays most is one that truly merges most (a uniformly random
  legal move's rate is `best_move_by_chance`);
- stochastic models: the reward is sigma's expectation over the codes; beside it
  `teacher_forced_mae`, the reward g gives with the encoder's code of the position the
  move really reached (the learner's condition), `codes_used` by the encoder over those
  positions, `sigma_on_code`, sigma's mean probability of the encoder's code, and
  `sigma_on_used`, its mean mass on the codes the encoder used (the rest lies on codes
  whose next states the learner never trains: the search's chance nodes can still
  pick them).

Writes `model_check.json` into the run directory and prints it.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from muzero_jax import evaluate

EVERY = 10  # plies between kept positions, so that they spread over a game


def random_positions(env, key, num_games: int, plies: int):
    """(inner states, observations) of `num_games` games of random legal moves, every
    `EVERY` plies up to `plies` (games that end are not restarted: their later
    positions are terminal and masked out by the caller)."""
    reset_key, key = jax.random.split(key)
    inner, _ = jax.vmap(env.initial)(jax.random.split(reset_key, num_games))

    def ply(inner, key):
        act_key, step_key = jax.random.split(key)
        legal = jax.vmap(env.legal_action_mask)(inner)
        action = jax.random.categorical(act_key, jnp.where(legal, 0.0, -jnp.inf))
        step = jax.vmap(env.transition)(inner, action, jax.random.split(step_key, num_games))
        return step.inner, (step.inner, step.observation)

    _, states = jax.lax.scan(ply, inner, jax.random.split(key, plies))
    kept = jax.tree.map(lambda x: x[EVERY - 1::EVERY], states)
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), kept)


def check(run_dir: str, num_states: int = 2048, seed: int = 0) -> dict:
    """The figures of the module docstring for the run in `run_dir`."""
    _, agent, step, runs = evaluate.load_runs(run_dir, None)
    return {"run_dir": os.path.abspath(run_dir), "checkpoint": int(step),
            **check_params(agent, runs[0][1].params, num_states, seed)}


def _model_rewards(env, model, params, key, num_games: int, plies: int) -> dict:
    """One program: the kept positions' legal masks `[B, A]`, pgx's rewards `[B, A]` and
    the model's `[B, A]`; for a stochastic model also the teacher-forced rewards `[B, A]`,
    the encoder's codes `[B, A]` and sigma `[B, A, C]`."""
    inner, obs = random_positions(env, key, num_games, plies)
    alive = ~jax.vmap(env.terminated)(inner)
    legal = jax.vmap(env.legal_action_mask)(inner) & alive[:, None]
    obs = obs.astype(jnp.float32)
    actions = jnp.arange(legal.shape[-1], dtype=jnp.int32)

    def step(a):  # each move stepped once: its reward the truth, its observation the code's
        keys = jax.random.split(jax.random.fold_in(key, a), obs.shape[0])
        return jax.vmap(env.transition)(inner, jnp.full(obs.shape[:1], a), keys)

    reached = jax.vmap(step, out_axes=1)(actions)  # [B, A, ...]
    out = {"legal": legal, "true": reached.reward.astype(jnp.float32)}
    root = model.initial_inference(params, obs)
    if not hasattr(model, "afterstate"):
        out["predicted"] = jax.vmap(
            lambda a: model.recurrent_inference(params, root.state,
                                                jnp.full(obs.shape[:1], a)).reward,
            out_axes=1)(actions)
        return out

    def move(a, observation):
        after, sigma_logits, _ = model.afterstate(params, root.state,
                                                  jnp.full(obs.shape[:1], a))
        sigma = jax.nn.softmax(sigma_logits)
        per_code = jax.vmap(lambda c: model.chance(params, after, jnp.broadcast_to(
            jax.nn.one_hot(c, model.num_codes), sigma.shape)).reward, out_axes=-1)(
                jnp.arange(model.num_codes))
        code = jnp.argmax(model.encode(params, observation.astype(jnp.float32)), axis=-1)
        forced = model.chance(params, after, jax.nn.one_hot(code, model.num_codes)).reward
        return jnp.sum(per_code * sigma, axis=-1), forced, code, sigma

    predicted, forced, codes, sigmas = jax.vmap(move, in_axes=(0, 1), out_axes=1)(
        actions, reached.observation)
    return {**out, "predicted": predicted, "forced": forced, "codes": codes,
            "sigmas": sigmas}


def check_params(agent, params, num_states: int = 2048, seed: int = 0) -> dict:
    """The figures of the module docstring for `agent`'s model with `params`, over
    about `num_states` positions."""
    plies = 100  # random games last about 100-150 moves: few positions past the end
    num_games = max(1, num_states * EVERY // plies)
    arrays = jax.jit(lambda p, k: _model_rewards(agent.env, agent.model, p, k, num_games,
                                                 plies))(params, jax.random.key(seed))
    stochastic = "forced" in arrays
    legal_np, true_np, pred_np = (np.asarray(arrays[k]) for k in ("legal", "true",
                                                                   "predicted"))
    masked_true = np.where(legal_np, true_np, -np.inf)
    differ = legal_np.any(-1) & (masked_true.max(-1) > np.where(legal_np, true_np,
                                                                np.inf).min(-1))
    best = np.argmax(np.where(legal_np, pred_np, -np.inf), axis=-1)
    hit = np.take_along_axis(true_np, best[:, None], -1)[:, 0] == masked_true.max(-1)
    by_chance = (legal_np & (true_np == masked_true.max(-1, keepdims=True))).sum(-1) / \
        np.maximum(legal_np.sum(-1), 1)
    record = {"model": "stochastic" if stochastic else "plain",
              "positions": int(legal_np.any(-1).sum()), "legal_moves": int(legal_np.sum()),
              "mean_reward": float(true_np[legal_np].mean()),
              "reward_mae": float(np.abs(pred_np - true_np)[legal_np].mean()),
              "best_move": float(hit[differ].mean()),
              "best_move_by_chance": float(by_chance[differ].mean()),
              "positions_that_differ": int(differ.sum())}
    if stochastic:
        forced_np, codes_np, sigma_np = (np.asarray(arrays[k]) for k in ("forced", "codes",
                                                                          "sigmas"))
        used = np.unique(codes_np[legal_np])
        on_code = np.take_along_axis(sigma_np, codes_np[..., None], -1)[..., 0]
        record.update(
            teacher_forced_mae=float(np.abs(forced_np - true_np)[legal_np].mean()),
            sigma_on_code=float(on_code[legal_np].mean()),
            codes_used=int(used.size),
            sigma_on_used=float(sigma_np[..., used].sum(-1)[legal_np].mean()))
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--states", type=int, default=2048, help="positions to check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    record = check(args.run_dir, args.states, args.seed)
    with open(os.path.join(args.run_dir, "model_check.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
