"""muzero_jax: MuZero in JAX, with compiled search (mctx).

The public face:

    config = muzero_jax.cartpole(seed=0)      # or classic() / atari_tiny() / atari_paper()
    agent = muzero_jax.Agent(config)           # init / act / learn, jitted
    result = muzero_jax.train(config)          # the whole loop
"""

import warnings

from muzero_jax import compile_stats, distributed, loop, presets
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
    "PRESETS", "ActingConfig", "Agent", "presets", "EnvConfig", "LearnerConfig", "LossConfig",
    "NetworkConfig", "ReplayConfig", "RunConfig", "SearchConfig", "Batch", "Config", "ConfigError", "Exploration", "SearchOutput",
    "TrainResult", "TrainState", "Trajectory", "atari_paper", "atari_tiny", "cartpole",
    "classic", "compile_stats", "distributed", "evaluate_gymnasium", "evaluate_jax", "loop",
    "make_train", "minatar",
    "muzero_reanalyze", "sample_efficient", "train", "validate",
]
