import csv
import glob
import math
import os
import struct

from tensorboardX.proto import event_pb2

from muzero_jax.logger import Logger, read_csv


def tensorboard_events(run_dir):
    """Every event in the run's event files, files in creation order."""
    events = []
    for path in sorted(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.*"))):
        data = open(path, "rb").read()
        offset = 0
        while offset < len(data):  # TFRecord: length, crc, payload, crc
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            events.append(event_pb2.Event.FromString(data[offset + 12:offset + 12 + length]))
            offset += 12 + length + 4
    return events


def tensorboard_scalars(run_dir):
    """(tag, step, value) of every scalar in the run's event files."""
    return [(value.tag, event.step, value.simple_value)
            for event in tensorboard_events(run_dir) for value in event.summary.value]


def read_rows(path):
    return list(csv.DictReader(open(path)))


def test_csv_and_tensorboard_get_the_same_scalars(tmp_path):
    logger = Logger(str(tmp_path))
    logger.write({"env_steps": 10, "episodes_return": math.nan, "eval_return": None})
    logger.write({"env_steps": 20, "episodes_return": 12.0, "eval_return": 9.5,
                  "loss": 3.25})  # a new column: the CSV is rewritten with it
    logger.write({"env_steps": 30, "episodes_return": 14.0, "eval_return": None,
                  "loss": 2.5})
    logger.close()
    rows = read_rows(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["env_steps", "episodes_return", "eval_return", "loss"]
    assert [r["loss"] for r in rows] == ["", "3.25", "2.5"]
    assert [r["eval_return"] for r in rows] == ["", "9.5", ""]
    columns = read_csv(str(tmp_path / "metrics.csv"))
    assert columns["env_steps"] == [10.0, 20.0, 30.0]
    assert math.isnan(columns["episodes_return"][0])
    # NaN and None are left out of TensorBoard.
    assert sorted(tensorboard_scalars(str(tmp_path))) == [
        ("episodes_return", 20, 12.0), ("episodes_return", 30, 14.0),
        ("eval_return", 20, 9.5), ("loss", 20, 3.25), ("loss", 30, 2.5)]


def test_resuming_rewrites_the_csv_from_the_checkpointed_history(tmp_path):
    logger = Logger(str(tmp_path))
    rows = [{"env_steps": s, "loss": float(s)} for s in (10, 20, 30)]
    for row in rows:
        logger.write(row)
    logger.close()
    # The run was checkpointed after step 20, then killed after logging step 30.
    resumed = Logger(str(tmp_path), history=rows[:2])
    resumed.write({"env_steps": 30, "loss": 3.0})
    resumed.close()
    assert [r["loss"] for r in read_rows(tmp_path / "metrics.csv")] == ["10.0", "20.0", "3.0"]
    # Both sessions' events are kept; the second starts with a purge of steps >= 21,
    # so TensorBoard drops the first session's step-30 event when it reads them.
    assert len(glob.glob(str(tmp_path / "tensorboard" / "events.out.*"))) == 2
    events = tensorboard_events(str(tmp_path))
    purge = [e for e in events if e.HasField("session_log")]
    assert [(e.step, e.session_log.status) for e in purge] == [(21, 1)]  # 1: START
    assert tensorboard_scalars(str(tmp_path)) == [
        ("loss", 10, 10.0), ("loss", 20, 20.0), ("loss", 30, 30.0), ("loss", 30, 3.0)]
