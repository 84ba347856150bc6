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


def check_params(agent, params, num_states: int = 2048, seed: int = 0) -> dict:
    """The figures of the module docstring for `agent`'s model with `params`, over
    about `num_states` positions."""
    env, model = agent.env, agent.model
    key = jax.random.key(seed)
    plies = 100  # random games last about 100-150 moves: few positions past the end
    inner, obs = random_positions(env, key, max(1, num_states * EVERY // plies), plies)
    alive = ~jax.vmap(env.terminated)(inner)
    legal = jax.vmap(env.legal_action_mask)(inner) & alive[:, None]
    obs = obs.astype(jnp.float32)
    num_actions = legal.shape[-1]
    # Each move stepped once: its reward is the truth, its observation the encoder's input.
    reached = [jax.vmap(env.transition)(inner, jnp.full(obs.shape[:1], a, jnp.int32),
                                        jax.random.split(jax.random.fold_in(key, a),
                                                         obs.shape[0]))
               for a in range(num_actions)]
    true = jnp.stack([step.reward for step in reached], axis=-1).astype(jnp.float32)
    root = model.initial_inference(params, obs)
    stochastic = hasattr(model, "afterstate")
    predicted, forced, codes, sigmas = [], [], [], []
    for a in range(num_actions):
        action = jnp.full(obs.shape[:1], a, jnp.int32)
        if not stochastic:
            predicted.append(model.recurrent_inference(params, root.state, action).reward)
            continue
        after, sigma_logits, _ = model.afterstate(params, root.state, action)
        sigma = jax.nn.softmax(sigma_logits)
        per_code = jnp.stack([
            model.chance(params, after, jnp.broadcast_to(jax.nn.one_hot(c, model.num_codes),
                                                         sigma.shape)).reward
            for c in range(model.num_codes)], axis=-1)
        predicted.append(jnp.sum(per_code * sigma, axis=-1))
        code = jax.nn.one_hot(jnp.argmax(model.encode(params, reached[a].observation.astype(
            jnp.float32)), axis=-1), model.num_codes)
        forced.append(model.chance(params, after, code).reward)
        codes.append(jnp.argmax(code, axis=-1))
        sigmas.append(sigma)
    predicted = jnp.stack(predicted, axis=-1)
    legal_np, true_np, pred_np = (np.asarray(x) for x in (legal, true, predicted))
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
        forced_np = np.asarray(jnp.stack(forced, axis=-1))
        codes_np = np.asarray(jnp.stack(codes, -1))  # [B, A]
        used = np.unique(codes_np[legal_np])
        sigma_np = np.asarray(jnp.stack(sigmas, axis=-2))  # [B, A, C]
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
