"""One process of a multi-process training run (started by tests/test_distributed.py).

    python tests/distributed_worker.py PORT NUM_PROCESSES PROCESS_ID RUN_DIR \
        TOTAL_ENV_STEPS [resume]

Joins the others on 127.0.0.1:PORT, trains the tiny config on every device of every
process into RUN_DIR, then writes its replicated parameters to
RUN_DIR/params-<PROCESS_ID>.npz, for the test to compare across processes.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from muzero_jax import distributed  # noqa: E402


def main(argv):
    port, num_processes, process_id, run_dir, total = argv[:5]
    resume = len(argv) > 5 and argv[5] == "resume"
    distributed.initialize(f"127.0.0.1:{port}", int(num_processes), int(process_id))
    import jax

    import muzero_jax as mz

    config = mz.cartpole(num_envs=8, rollout_length=8, hidden_size=16, latent_size=8,
                         num_hidden_layers=1, num_simulations=4, batch_size=16,
                         updates_per_iteration=2, capacity=8 * 64, min_size=32,
                         td_steps=3, unroll_steps=2, eval_every=0, checkpoint_every=2,
                         total_env_steps=int(total), num_devices=0, log_every=1)
    result = mz.train(config, run_dir=run_dir, resume=resume, iterations_per_call=1,
                      log=lambda line: print(line, flush=True))
    leaves = jax.tree.leaves(result.state.params)
    np.savez(os.path.join(run_dir, f"params-{process_id}.npz"),
             *[np.asarray(x) for x in leaves], env_steps=result.env_steps,
             train_steps=result.train_steps, devices=jax.device_count())
    print(f"process {process_id}: {result.env_steps} env steps, {result.train_steps} "
          f"updates on {jax.device_count()} devices", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
