"""The device benchmark (benchmarks/device.py): its tiny mode's files, and its batches."""

import json

import jax
import numpy as np
import pytest

import muzero_jax as mz
from benchmarks import device, machine
from benchmarks import run as bench_run


def test_random_batch_has_make_batch_shapes_on_atari_shaped_frames():
    """The Atari stand-in gives h the stack of planes the host path builds, and the
    random batch has make_batch's exact shapes and dtypes, actions in range."""
    config, env = device.learner_config("atari_paper", 3, tiny=True)
    assert config.env.history_length == 0
    assert env.spec.observation_shape == (84, 84, 4 * (1 + 1))  # atari_tiny: 4 gray frames
    agent = mz.Agent(config, env=env)
    state = device.fresh_state(agent)
    shapes = jax.eval_shape(agent.model.init, jax.random.key(0))
    assert jax.tree.structure(state.params) == jax.tree.structure(shapes)
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(shapes), strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
    batch = device.random_batch(agent, state)
    want = jax.eval_shape(agent.make_batch, jax.eval_shape(agent.init_replay),
                          jax.random.key(0), state)
    assert jax.tree.structure(batch) == jax.tree.structure(want)
    for got, expected in zip(jax.tree.leaves(batch), jax.tree.leaves(want), strict=True):
        assert got.shape == expected.shape and got.dtype == expected.dtype
    assert batch.observation.shape == (3, 84, 84, 8)
    actions = np.asarray(batch.targets.actions)
    assert actions.shape == (3, config.loss.unroll_steps)
    assert actions.min() >= 0 and actions.max() < agent.num_actions == device.ATARI_ACTIONS


def test_budget_skips_what_would_start_too_late_and_names_it():
    budget = device.Budget(100.0)
    budget.part(0.5)  # this part may run until half of the budget
    assert 49.0 < budget.left() <= 50.0
    assert budget.allows("row a", needs=10.0)
    assert not budget.allows("row b", needs=60.0)
    budget.part(1.0)
    assert budget.allows("row b", needs=60.0)
    assert budget.skipped == ["row b"]


def test_device_seconds_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_run.main(["--only", "device", "--tiny", "--device-seconds", "0"])
    assert exit_info.value.code == 2
    assert "--device-seconds=0.0: expected seconds > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_device_run_writes_every_figure(tmp_path):
    """`python -m benchmarks --only device --tiny`: the files, their fields and shapes."""
    # A budget no CPU reaches: every row runs, whatever the machine's load.
    results = bench_run.main(["--only", "device", "--tiny", "--out", str(tmp_path),
                              "--device-seconds", "1e6"])
    name = machine.device_name()
    written = json.loads((tmp_path / "device" / f"{name}-tiny.json").read_text())
    assert written["sections"].keys() == {"device"}
    section = written["sections"]["device"]
    assert section["tiny"] is True and section["skipped"] == []
    assert section["device"]["device_kind"] == jax.devices()[0].device_kind
    plan = device.make_plan(tiny=True)

    rows = section["search"]["rows"]
    assert [(r["algorithm"], r["batch"]) for r in rows] == [
        (a, b) for a in ("muzero", "gumbel") for b in plan.search_batches]
    for r in rows:
        assert r["simulations"] == plan.simulations
        for part in ("search", "network_only"):
            assert r[part]["unit"] == "simulations/s" and r[part]["median"] > 0
            assert len(r[part]["samples_seconds"]) == plan.repeats
            assert r[part]["first_call_seconds"] > 0
        assert r["ratio"] == pytest.approx(r["search"]["seconds_per_call"]
                                           / r["network_only"]["seconds_per_call"])

    learners = section["learner"]["rows"]
    assert [r["network"] for r in learners] == list(plan.learners)
    assert [r["kind"] for r in learners] == ["resnet", "board"]
    assert learners[0]["observation_shape"] == [84, 84, 8]
    assert learners[1]["observation_shape"] == [9, 9, 17] and learners[1]["num_actions"] == 82
    for r in learners:
        assert r["batch"] == 2 and r["parameters"] > 0
        assert r["learn"]["unit"] == "updates/s"
        assert r["learn_samples"]["median"] == pytest.approx(2 * r["learn"]["median"])

    run = section["minatar"]
    steps = 4 * 4  # tiny: 4 envs x 4 steps an iteration
    assert run["env_steps"] == plan.minatar_max_iterations * steps
    assert [p["env_steps"] for p in run["curve"]] == [0, run["env_steps"]]
    assert run["curve"][0]["wall_seconds"] <= run["curve"][1]["wall_seconds"] <= run["wall_seconds"]
    assert run["train_steps"] == run["curve"][-1]["train_steps"] > 0
    assert set(run["first_call_seconds"]) == {"evaluate", "rollout", "add", "update"}
    assert (tmp_path / "device" / run["plot"]).stat().st_size > 0

    table = (tmp_path / "device" / f"{name}-tiny.md").read_text()
    assert "### Search: simulations/s" in table and "| gumbel | 2 |" in table
    assert "| atari_paper | resnet |" in table and "![MinAtar learning run]" in table
    assert results["sections"]["device"]["plan"]["learners"] == plan.learners
    assert section["plan"]["minatar_seconds"] is None  # unbounded: strict JSON has no inf
