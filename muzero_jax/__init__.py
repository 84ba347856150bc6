"""muzero_jax: MuZero in JAX, with compiled search (mctx).

    config = muzero_jax.cartpole(seed=0)       # a preset (muzero_jax/presets.py)
    config = config.replace(num_simulations=8)  # any field, by name or by stage
    result = muzero_jax.train(config)           # the whole run
    agent = muzero_jax.Agent(config)            # or init / act / learn, in a notebook

One training iteration, top down (the file of each stage, and the stage config of
`muzero_jax.config` it reads):

    envs/         EnvConfig       the env: JAX-native (vmapped) or host (Gymnasium, ALE)
    networks.py   NetworkConfig   h, g, f on categorical supports (support.py)
    search.py     SearchConfig    mctx's MuZero or Gumbel policy over g and f
    selfplay.py   ActingConfig    B envs x T steps of search and exploration -> Trajectory
    replay.py     ReplayConfig    ring buffers, priorities -> Windows of K + n + 1 steps
    batch.py      LossConfig      Reanalyze and targets (targets.py) -> Batch
    learner.py    LearnerConfig   the K-step unroll loss and the optax update

`pieces.make_pieces` builds each piece once, `loop.make_train` composes them into one
compiled iteration; `train.train` drives the run (RunConfig: chunks, logs, checkpoints,
evaluation) over a JAX or a host backend. Variants add data and losses as one
`Extension` in `muzero_jax.extensions`; docs/design.md has the whole picture.
"""

import warnings

from muzero_jax import compile_stats, distributed, loop, pieces, presets
from muzero_jax.agent import Agent
from muzero_jax.config import (
    ActingConfig,
    Config,
    ConfigError,
    EnvConfig,
    LearnerConfig,
    LossConfig,
    NetworkConfig,
    ReplayConfig,
    RunConfig,
    SearchConfig,
    validate,
)
from muzero_jax.evaluate import evaluate_gymnasium, evaluate_jax
from muzero_jax.learner import Batch, TrainState
from muzero_jax.loop import make_train
from muzero_jax.presets import (
    PRESETS,
    atari_paper,
    atari_tiny,
    cartpole,
    classic,
    control,
    minatar,
    muzero_reanalyze,
    sample_efficient,
)
from muzero_jax.search import Exploration, SearchOutput
from muzero_jax.selfplay import Trajectory
from muzero_jax.train import TrainResult, train

# `python -m muzero_jax.evaluate` (or .plot) runs a module the package has already
# imported; runpy's warning about that is harmless here.
warnings.filterwarnings("ignore", message=r".*found in sys.modules after import of package "
                        r"'muzero_jax'", category=RuntimeWarning)

__all__ = [
    "PRESETS", "ActingConfig", "Agent", "Batch", "Config", "ConfigError", "EnvConfig",
    "Exploration", "LearnerConfig", "LossConfig", "NetworkConfig", "ReplayConfig",
    "RunConfig", "SearchConfig", "SearchOutput", "TrainResult", "TrainState", "Trajectory",
    "__version__", "atari_paper", "atari_tiny", "cartpole", "classic", "compile_stats", "control",
    "distributed", "evaluate_gymnasium", "evaluate_jax", "loop", "make_train", "minatar",
    "muzero_reanalyze", "pieces", "presets", "sample_efficient", "train", "validate",
]

__version__ = "0.4.0"
