"""The `minatar` preset on gymnax's MinAtar games: it builds and trains (seconds), and the
Breakout bar (slow: three runs of about an hour, --runslow)."""

import dataclasses
import json
import os

import pytest

import muzero_jax as mz
from muzero_jax.support import max_scalar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_minatar_preset_sizes_its_supports():
    cfg = mz.minatar()
    assert mz.PRESETS["minatar"] is mz.minatar
    assert cfg.env.id == "gymnax/Breakout-MinAtar" and cfg.network.kind == "conv_mlp"
    # Rewards are 0 or 1 a step: the supports must hold 1 and 1 / (1 - discount).
    assert max_scalar(cfg.network.reward_support_size) >= 1.0
    assert max_scalar(cfg.network.value_support_size) >= 1 / (1 - cfg.loss.discount)
    assert cfg.run.final_eval_episodes == 100
    mz.validate(cfg, max_abs_reward=1.0, observation_shape=(10, 10, 4), num_actions=3)


def test_every_minatar_variant_is_the_preset_changed_only_where_its_flags_say():
    from benchmarks import minatar
    from muzero_jax import cli

    def fields(config):
        return {f"{stage}.{name}": value for stage, values in dataclasses.asdict(config).items()
                if isinstance(values, dict) for name, value in values.items()}

    preset = fields(cli.parse_config(["--preset", "minatar"]))
    for variant, flags in minatar.VARIANTS.items():
        config = cli.parse_config(["--preset", "minatar", *flags])
        changed = {k for k, v in fields(config).items() if v != preset[k]}
        assert changed == {f[2:] for f in flags if f.startswith("--")}, variant
    # Without a target network the value targets bootstrap from the stored search values.
    assert mz.minatar().learner.use_target_network
    assert not cli.parse_config(["--preset", "minatar", *minatar.VARIANTS["search_values"]]
                                ).learner.use_target_network


@pytest.mark.parametrize("game, network", [
    ("Breakout", "conv_mlp"),
    # The board ResNet's own path is tested in test_board.py; here only its MinAtar sizes,
    # a compile of 40 s on this CPU: slow.
    pytest.param("SpaceInvaders", "board", marks=pytest.mark.slow)])
def test_minatar_preset_runs_an_iteration_on_a_minatar_id(game, network):
    # The preset's search and targets, shrunk in everything that only sets the cost.
    cfg = mz.minatar(env=f"gymnax/{game}-MinAtar", network=network, num_envs=4,
                     rollout_length=8, hidden_size=8, latent_size=8, num_hidden_layers=1,
                     resnet_channels=4, num_simulations=2, batch_size=4,
                     updates_per_iteration=1, capacity=4 * 32, min_size=16,
                     td_steps=2, unroll_steps=2, total_env_steps=64, eval_every=0,
                     log_every=1)
    result = mz.train(cfg, log=None)
    assert result.env_steps == 64 and result.train_steps > 0
    channels = {"Breakout": 4, "SpaceInvaders": 6}[game]
    h = result.state.params["params"]["representation"]
    if network == "board":  # keeps the 10x10 board: a 3x3 conv stem over the planes
        assert h["Conv_0"]["kernel"].shape == (3, 3, channels, 4)
    else:  # the stem at 10x10, then one dense layer to the latent
        assert h["Conv_0"]["kernel"].shape == (3, 3, channels, 4)
        assert h["Dense_0"]["kernel"].shape == (10 * 10 * 4, 8)


def test_the_mlp_variant_reads_the_flattened_planes():
    # The same preset and pieces as the run above, another h: its shapes suffice.
    import jax
    import jax.numpy as jnp

    from benchmarks import minatar
    from muzero_jax import cli

    cfg = cli.parse_config(["--preset", "minatar", *minatar.VARIANTS["mlp"],
                            "--network.hidden_size", "8", "--network.latent_size", "8"])
    agent = mz.Agent(cfg)
    params = jax.eval_shape(agent.model.init, jax.random.key(0))
    h = params["params"]["representation"]
    assert h["MLP_0"]["Dense_0"]["kernel"].shape == (10 * 10 * 4, 8)
    root = jax.eval_shape(agent.model.initial_inference, params,
                          jnp.zeros((2, 10, 10, 4), jnp.float32))
    assert root.state.shape == (2, 8)


@pytest.mark.slow
def test_minatar_breakout_bar(tmp_path):
    """The Breakout bar: the preset's final greedy evaluation (100 fresh episodes after 2M
    env steps) at least 24, median over seeds 0-2. Each run's wall time (the bar asks an
    hour of a 2-core CPU, compilation included) is printed, not asserted: it depends on
    the machine's load; the returns are deterministic per seed."""
    import numpy as np

    from benchmarks import minatar

    finals = []
    for seed in range(3):
        run = minatar.run_game("Breakout", str(tmp_path / f"seed{seed}"), 2_000_000, seed)
        print(f"\nBreakout-MinAtar (minatar, seed {seed}): {run['env_steps']:,} env steps, "
              f"{run['wall_seconds']:.0f} s wall (compile included), greedy "
              f"{run['final_eval_return']:.1f} over {run['final_eval_episodes']} episodes")
        assert run["final_eval_episodes"] == 100
        finals.append(run["final_eval_return"])
    assert np.median(finals) >= 24.0, finals


def test_benchmark_reads_runs_into_a_table_beside_the_published_figures(tmp_path):
    from benchmarks import minatar

    runs = []
    for i, game in enumerate(minatar.GAMES):
        run_dir = tmp_path / game
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps({
            "wall_seconds": 100.0 + i, "train_seconds": 90.0 + i, "env_steps": 20_480,
            "train_steps": 600, "eval_return_mean": 2.5 + i, "eval_return_std": 1.0,
            "eval_episodes": 100}))
        (run_dir / "metrics.csv").write_text(
            "iteration,env_steps,wall_seconds,eval_return\n10,5120,30.0,\n20,10240,50.5,1.5\n"
            "40,20480,80.0,3.0\n")
        runs.append(minatar.read_run(str(run_dir), game, seed=0))
    # Curve times are shifted from train() start to process start (10 s of start-up).
    assert runs[0]["curve"] == [{"wall_seconds": 60.5, "env_steps": 10_240, "eval_return": 1.5},
                                {"wall_seconds": 90.0, "env_steps": 20_480, "eval_return": 3.0}]
    untrained = {game: {"episodes": 100, "random": {"mean": 0.25 + i, "std": 0.5},
                        "single": [{"action": 0, "name": "no-op", "mean": 0.0, "std": 0.0},
                                   {"action": 1, "name": "up", "mean": 1.0 + i, "std": 0.1}]}
                 for i, game in enumerate(minatar.GAMES)}
    section = {"config": "test", "env_steps_budget": 20_480, "runs": runs, "plot": "m.png",
               "untrained": untrained}
    table = "\n".join(minatar.markdown(section))
    assert "| gymnax baselines, PPO | 10M steps | 28 | 15 | 58 | 131 |" in table
    assert "| random play | 100 episodes | 0.2 | 1.2 | 2.2 | 3.2 | 4.2 |" in table
    assert ("| the best single action, played throughout | 100 episodes | 1.0 (up) | 2.0 (up) "
            "| 3.0 (up) | 4.0 (up) | 5.0 (up) |") in table
    assert "| Breakout | plain | 0 | 20,480 | 100 | 205 | 2.5 +- 1.0 | 3.0 at 20,480 |" in table
    # A run resumed in a later sitting says so beside its wall time.
    runs[1]["resumes"] = 2
    table = "\n".join(minatar.markdown(dict(section, runs=runs)))
    assert "| Asterix | plain | 0 | 20,480 | 101 (resumed 2x) | 203 | 3.5 +- 1.0 |" in table
    minatar.plot(runs, str(tmp_path / "m.png"))
    assert (tmp_path / "m.png").stat().st_size > 0


def test_players_without_learning_play_the_env_the_agent_is_evaluated_on():
    from benchmarks import minatar

    # Freeway's chicken scores only at the top of the road: standing still or moving down
    # never does, "up" alone does within 200 steps.
    players = minatar.untrained_players("Freeway", episodes=2, max_episode_steps=200)
    assert players["episodes"] == 2
    assert [(a["action"], a["name"]) for a in players["single"]] == [
        (0, "no-op"), (1, "up"), (2, "down")]
    means = {a["name"]: a["mean"] for a in players["single"]}
    assert means["no-op"] == means["down"] == 0.0
    assert means["up"] >= 1.0
    assert players["random"]["mean"] >= 0.0
    assert minatar.untrained_lines(players) == [
        ("random play", players["random"]["mean"]), ("best single action", means["up"])]


def test_a_band_reads_seeds_that_evaluated_elsewhere_off_their_curves():
    from benchmarks import minatar

    def run(points):
        return {"curve": [{"env_steps": s, "wall_seconds": w, "eval_return": r}
                          for s, w, r in points]}

    sparse = run([(200, 20.0, 2.0), (400, 40.0, 6.0)])
    dense = run([(100, 5.0, 0.0), (300, 25.0, 4.0), (500, 45.0, 8.0)])
    # dense at 200: 2.0 (clock 15.0); at 400: 6.0 (clock 35.0)
    assert minatar.band([sparse, dense], "env_steps") == (
        [200.0, 400.0], [2.0, 6.0], [2.0, 6.0], [2.0, 6.0])
    assert minatar.band([sparse, dense], "wall_seconds")[0] == [17.5, 37.5]


def test_benchmark_gives_seeds_median_and_range_per_variant_and_bands(tmp_path):
    from benchmarks import minatar

    runs = []
    for variant, finals in (("plain", (3.0, 1.0, 2.0)), ("efficientzero", (5.0, 4.0, 9.0))):
        for seed, final in enumerate(finals):
            run_dir = tmp_path / variant / str(seed)
            run_dir.mkdir(parents=True)
            (run_dir / "summary.json").write_text(json.dumps({
                "wall_seconds": 100.0 + seed, "train_seconds": 100.0, "env_steps": 1000,
                "train_steps": 10, "eval_return_mean": final, "eval_return_std": 0.5,
                "eval_episodes": 100}))
            (run_dir / "metrics.csv").write_text(
                "iteration,env_steps,wall_seconds,eval_return\n"
                f"1,500,{10 + seed},{seed}\n2,1000,{20 + 2 * seed},{final}\n")
            runs.append(dict(minatar.read_run(str(run_dir), "Breakout", seed), variant=variant))
    section = {"config": "test", "env_steps_budget": 1000, "runs": runs, "plot": "m.png",
               "variant_flags": {v: " ".join(minatar.VARIANTS[v])
                                 for v in ("plain", "efficientzero")}}
    table = "\n".join(minatar.markdown(section))
    assert "| muzero_jax `minatar` plain, greedy, 100 episodes | 1,000 steps | 2.0 [1.0, 3.0] |" \
        in table
    assert "efficientzero, greedy, 100 episodes | 1,000 steps | 5.0 [4.0, 9.0] |" in table
    assert "- plain: `--loss.off_policy_correction_steps 0`" in table
    assert "| Breakout | efficientzero | 2 | 1,000 |" in table
    assert ("- efficientzero on Breakout: median 5.0 against plain's 2.0, higher on 3/3 "
            "seeds: helps") in table
    # Seeds evaluate at the same env steps: median and range there; wall times' median.
    xs, median, low, high = minatar.band(runs[3:], "env_steps")
    assert (xs, median, low, high) == ([500.0, 1000.0], [1.0, 5.0], [0.0, 4.0], [2.0, 9.0])
    # Wall times: metrics.csv's plus the seed's start-up (summary: seed s), median of seeds.
    assert minatar.band(runs[3:], "wall_seconds")[0] == [12.0, 23.0]
    minatar.plot(runs, str(tmp_path / "m.png"))
    assert (tmp_path / "m.png").stat().st_size > 0


def test_a_run_cut_off_by_a_sittings_end_is_resumed_not_started_again(tmp_path, monkeypatch):
    import dataclasses

    from benchmarks import minatar
    from muzero_jax import cli

    run = tmp_path / "seed1"
    (run / "checkpoints" / "62").mkdir(parents=True)
    flags = ("--preset", "minatar")
    config = dataclasses.asdict(cli.parse_config([*flags, "--run.seed", "1",
                                                  "--run.total_env_steps", "20480"]))
    (run / "config.json").write_text(json.dumps(config))
    env_id = "gymnax/Breakout-MinAtar"
    assert minatar.cut_off(str(run))
    assert not minatar.finished(str(run), env_id, 20_480, 1, flags)
    commands = []
    monkeypatch.setattr(minatar.subprocess, "run", lambda command, **_: (
        commands.append(command), type("Done", (), {"returncode": 0})())[1])
    minatar.train_cold(["--env", env_id, *flags, "--seed", "1"], str(run), 20_480, 512)
    assert commands[0][1:] == [minatar.SCRIPT, "--resume", str(run), "--compile-cache", "none"]
    # Another seed, budget or config than the one cut off: refused, not resumed.
    with pytest.raises(RuntimeError, match=r"cut off before its end of gymnax/Breakout-MinAtar"
                                           r", seed 1, 20,480 env steps; expected .*seed 2"):
        minatar.finished(str(run), env_id, 20_480, 2, flags)
    with pytest.raises(RuntimeError, match="cut off before its end of another config "
                                           r"\(network.value_prefix: False, expected True\)"):
        minatar.finished(str(run), env_id, 20_480, 1, (*flags, "--network.value_prefix", "true"))
    # Once the run wrote its summary it is read, and a fresh directory trains from scratch.
    (run / "summary.json").write_text("{}")
    assert not minatar.cut_off(str(run)) and minatar.finished(str(run), env_id, 20_480, 1, flags)
    minatar.train_cold(["--env", env_id, *flags, "--seed", "1"], str(tmp_path / "new"),
                       20_480, 512)
    assert commands[1][1:4] == [minatar.SCRIPT, "--env", env_id] and "--resume" not in commands[1]


def test_an_addition_helps_only_with_a_higher_median_and_most_seeds_higher():
    from benchmarks import minatar

    def runs(*finals):
        return [{"seed": s, "final_eval_return": f} for s, f in enumerate(finals)]

    plain = runs(1.0, 5.0, 9.0)
    # A higher median (6 > 5) from one seed of three: no.
    assert minatar.helps(runs(0.0, 6.0, 8.0), plain) == {
        "helps": False, "higher": 1, "seeds": 3, "median": 6.0, "plain_median": 5.0,
        "plain_seeds": 3, "at_worst": False, "at_best": False}
    # Two seeds of three higher, median higher: yes; the same median: no.
    assert minatar.helps(runs(2.0, 6.0, 8.0), plain)["helps"]
    assert not minatar.helps(runs(2.0, 5.0, 10.0), plain)["helps"]
    # Only the seeds both have are compared; none in common says nothing.
    assert minatar.helps(runs(2.0, 6.0), plain)["seeds"] == 2
    assert minatar.helps([{"seed": 7, "final_eval_return": 99.0}], plain)["helps"] is False


def test_an_addition_is_decided_before_its_last_seed_where_that_seed_cannot_matter():
    from benchmarks import minatar

    def runs(*finals):
        return [{"seed": s, "final_eval_return": f} for s, f in enumerate(finals)]

    plain = runs(32.1, 21.3, 29.4)  # median 29.4
    # Seeds 0 and 1 both above plain's median: seed 2 at -inf gives median 44.0 > 29.4
    # and 2 of 3 higher, so it helps whatever seed 2 gives.
    two_high = minatar.helps(runs(44.0, 44.7), plain)
    assert (two_high["at_worst"], two_high["at_best"]) == (True, True)
    assert minatar.verdict(two_high, 3) == "helps, whatever the 1 seed left give"
    # Higher on seed 0 only: seed 2 decides (at worst median 20.0, at best 35.0): open.
    split = minatar.helps(runs(35.0, 20.0), plain)
    assert (split["at_worst"], split["at_best"]) == (False, True)
    assert minatar.verdict(split, 3) == "open (2 of 3 seeds run)"
    # Higher on seed 1 only, and neither seed above plain's median: at best the median
    # is 28.0 < 29.4 (the count alone would leave it open: 2 of 3 could be higher).
    low = minatar.helps(runs(28.0, 22.0), plain)
    assert low["higher"] == 1 and (low["at_worst"], low["at_best"]) == (False, False)
    assert minatar.verdict(low, 3) == "does not help, whatever the 1 seed left give"
    # Plain short of its seeds: nothing is decided early.
    assert minatar.verdict(minatar.helps(runs(44.0, 44.7), runs(32.1, 21.3)), 3) == \
        "open (2 of 3 seeds run)"


def _finished_run(out, variant: str, game: str, seed: int, final: float,
                  device: str = "dev") -> None:
    """A finished run of 1,000 env steps as the benchmark leaves it, under `out`'s
    `device`."""
    import dataclasses

    from benchmarks import minatar
    from muzero_jax import cli

    run = out / "minatar" / device / variant / game / f"seed{seed}"
    run.mkdir(parents=True)
    flags = ("--preset", "minatar", *minatar.VARIANTS[variant])
    config = dataclasses.asdict(cli.parse_config([
        *flags, "--env.id", f"gymnax/{game}-MinAtar", "--run.seed", str(seed),
        "--run.total_env_steps", "1000"]))
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").write_text(json.dumps({
        "wall_seconds": 10.0, "train_seconds": 9.0, "env_steps": 1000, "train_steps": 10,
        "eval_return_mean": final, "eval_return_std": 0.5, "eval_episodes": 100}))
    (run / "metrics.csv").write_text(
        f"iteration,env_steps,wall_seconds,eval_return\n1,1000,9.0,{final}\n")


def _report_only(monkeypatch, minatar):
    """Reports without training, drawing or playing: the players without learning are a
    fake whose returns name the game."""
    monkeypatch.setattr(minatar, "train_cold", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(minatar, "plot", lambda runs, path, **_: None)
    monkeypatch.setattr(minatar, "untrained_players", lambda game: {
        "episodes": 100, "random": {"mean": len(game) / 10, "std": 0.0},
        "single": [{"action": 0, "name": "no-op", "mean": 0.0, "std": 0.0}]})


def test_a_report_of_finished_runs_trains_nothing_and_names_what_is_missing(tmp_path,
                                                                            monkeypatch):
    from benchmarks import minatar

    _report_only(monkeypatch, minatar)
    finals = {("plain", 0): 3.0, ("plain", 1): 5.0, ("plain", 2): 4.0,
              ("value_prefix", 0): 2.0, ("value_prefix", 1): 4.0, ("consistency", 0): 9.0}
    for (variant, seed), final in finals.items():
        _finished_run(tmp_path, variant, "Breakout", seed, final)
    section = minatar.benchmark(str(tmp_path), "dev", lambda _: None, 1000, games=("Breakout",),
                                seeds=3, variants=("plain", "value_prefix", "consistency"),
                                finished_only=True)
    assert len(section["runs"]) == 6
    assert section["missing"] == ["Breakout value_prefix seed 2", "Breakout consistency seed 1",
                                  "Breakout consistency seed 2"]
    table = "\n".join(minatar.markdown(section))
    # Lower on 2 seeds of 3: settled before its third; higher on its one seed: open.
    assert ("- value_prefix on Breakout: median 3.0 against plain's 4.0, higher on 0/2 seeds: "
            "does not help, whatever the 1 seed left give (at most 1 of 3 can be higher)") in table
    assert "- consistency on Breakout: median 9.0 against plain's 3.0, higher on 1/1 seeds: " \
           "open (1 of 3 seeds run)" in table
    assert "Not finished yet, left out of the table and curves: Breakout value_prefix seed 2" \
        in table
    with pytest.raises(minatar.NothingFinished, match="no finished MinAtar run"):
        minatar.benchmark(str(tmp_path), "other", lambda _: None, 1000, games=("Breakout",),
                          finished_only=True)


def test_the_preset_runs_on_every_game_beside_plain_and_the_other_variants_where_asked(
        tmp_path, monkeypatch):
    from benchmarks import minatar

    _report_only(monkeypatch, minatar)
    _finished_run(tmp_path, "plain", "Breakout", 0, 2.0)
    _finished_run(tmp_path, minatar.PRESET_VARIANT, "Breakout", 0, 3.0)
    section = minatar.benchmark(
        str(tmp_path), "dev", lambda _: None, 1000, games=("Breakout", "Asterix"), seeds=1,
        variants=("plain", minatar.PRESET_VARIANT, "consistency"),
        variant_games=("Breakout",), finished_only=True)
    assert section["missing"] == ["Breakout consistency seed 0", "Asterix plain seed 0",
                                  f"Asterix {minatar.PRESET_VARIANT} seed 0"]
    table = "\n".join(minatar.markdown(section))
    assert (f"| muzero_jax `minatar` {minatar.PRESET_VARIANT} (the preset), greedy, 100 "
            "episodes | 1,000 steps | 3.0 |") in table
    # Players without learning: the games with a finished run only.
    assert list(section["untrained"]) == ["Breakout"]
    assert "| random play | 100 episodes | 0.8 |" in table


def test_a_table_gathers_the_runs_each_machine_finished_and_names_the_machines(
        tmp_path, monkeypatch):
    from benchmarks import minatar

    _report_only(monkeypatch, minatar)
    _finished_run(tmp_path, "plain", "Breakout", 0, 2.0, device="slow")
    _finished_run(tmp_path, "plain", "Breakout", 1, 3.0, device="fast")
    # This machine's own run wins over another machine's of the same seed.
    _finished_run(tmp_path, "plain", "Breakout", 1, 4.0, device="dev")
    section = minatar.benchmark(str(tmp_path), "dev", lambda _: None, 1000,
                                games=("Breakout",), seeds=3, variants=("plain",),
                                finished_only=True)
    assert [(r["seed"], r["machine"], r["final_eval_return"]) for r in section["runs"]] == [
        (0, "slow", 2.0), (1, "dev", 4.0)]
    assert section["missing"] == ["Breakout plain seed 2"]
    table = "\n".join(minatar.markdown(section))
    assert "The runs come from 2 machines (dev, slow)" in table
    assert "| Breakout | plain | 0 | slow | 1,000 | 10 | 100 | 2.0 +- 0.5 | 2.0 at 1,000 |" in table
    # One machine's runs keep the table without the column.
    one = dict(section, runs=section["runs"][1:])
    assert "| Breakout | plain | 1 | 1,000 | 10 |" in "\n".join(minatar.markdown(one))


def test_every_committed_minatar_run_is_still_its_variant():
    """The variants are flags over the preset, which moves as it takes what pays: each
    committed run must still be the config its variant's flags give, or the benchmark
    would refuse to read it (`finished`)."""
    import glob

    from benchmarks import minatar

    runs = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "minatar", "*", "*",
                                         "*", "seed*")))
    assert runs
    for run in runs:
        variant, game, seed = run.split(os.sep)[-3:]
        with open(os.path.join(run, "config.json")) as f:
            steps = json.load(f)["run"]["total_env_steps"]
        assert minatar.finished(run, f"gymnax/{game}-MinAtar", steps, int(seed[4:]),
                                ("--preset", "minatar", *minatar.VARIANTS[variant])), run
