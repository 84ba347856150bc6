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


def test_a_missing_csv_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "metrics.csv: no such file" in capsys.readouterr().err
