"""The faults a run can meet, and how the command line reports them.

Bad input (`config.ConfigError`) and faults met while running (`RunFault`: a checkpoint
that cannot be read, a full disk, a non-finite value from an env or the learner, a
signal) are what a user can cause or has to act on: the experiment scripts and
`python -m muzero_jax.evaluate` print each as one line and exit with its `exit_code`,
never a traceback (`--debug`, or MUZERO_JAX_DEBUG=1, shows the traceback instead).
"""

from __future__ import annotations


class RunFault(RuntimeError):
    """A fault met while running; the message names what failed and what to do.

    Raised only once the run directory holds nothing it should not: whatever it held
    before stays as it was, and checkpoints written before the fault stay readable.
    """

    exit_code = 2


class Interrupted(RunFault):
    """SIGINT or SIGTERM: the run stopped at a chunk's end and saved a checkpoint, or,
    after a second signal (`at_once`), stopped in the middle of a chunk without one."""

    def __init__(self, message: str, signum: int, at_once: bool = False):
        super().__init__(message)
        self.exit_code = 128 + int(signum)  # the shell's convention: 130, 143
        self.at_once = at_once


class NonFiniteError(RunFault):
    """A non-finite observation or reward from the env, or a non-finite loss or gradient:
    the run stopped before any checkpoint held it (its last checkpoint is from before)."""
