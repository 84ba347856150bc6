"""muzero_jax: MuZero in JAX, with compiled search (mctx).

The public face:

    config = muzero_jax.cartpole(seed=0)
    agent = muzero_jax.Agent(config)           # init / act / learn, jitted
    result = muzero_jax.train(config)          # the whole loop
"""

from muzero_jax.agent import Agent
from muzero_jax.config import (
    PRESETS,
    Config,
    ConfigError,
    cartpole,
    sample_efficient,
    validate,
)
from muzero_jax.evaluate import evaluate_gymnasium, evaluate_jax
from muzero_jax.learner import Batch, TrainState
from muzero_jax.search import Exploration, SearchOutput
from muzero_jax.selfplay import Trajectory
from muzero_jax.train import TrainResult, train

__all__ = [
    "PRESETS", "Agent", "Batch", "Config", "ConfigError", "Exploration", "SearchOutput",
    "TrainResult", "TrainState", "Trajectory", "cartpole", "evaluate_gymnasium",
    "sample_efficient",
    "evaluate_jax", "train", "validate",
]
