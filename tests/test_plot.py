import pytest

from muzero_jax import plot
from muzero_jax.logger import Logger


def test_curves_png_from_a_runs_csv(tmp_path):
    logger = Logger(str(tmp_path))
    for step in range(1, 6):
        logger.write({"env_steps": 100 * step, "episodes_return": 10.0 * step,
                      "eval_return": None if step % 2 else 20.0 * step, "loss": 1.0 / step,
                      "priority_max": 2.0})  # a column no panel names gets its own
    logger.close()
    assert plot.main([str(tmp_path)]) == 0
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_seeds_get_a_curve_each(tmp_path):
    logger = Logger(str(tmp_path), run_key="run")
    for step in range(1, 4):
        for seed in (0, 1):
            logger.write({"env_steps": 100 * step, "run": f"seed{seed}", "seed": seed,
                          "episodes_return": 10.0 * step + seed, "eval_return": None})
    logger.close()
    panels = dict(plot.panel_series(str(tmp_path / "metrics.csv")))
    assert [(s["label"], s["y"]) for s in panels["return"]] == [
        ("episodes_return seed0", [10.0, 20.0, 30.0]),
        ("episodes_return seed1", [11.0, 21.0, 31.0])]
    assert "seed" not in panels and "run" not in panels  # labels, not curves
    assert plot.main([str(tmp_path)]) == 0


def test_a_missing_csv_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "metrics.csv: no such file" in capsys.readouterr().err
