#!/usr/bin/env bash
# An accelerator's figures in one call of about five minutes, compilation included:
# installs the wheels carried in .whl/ (benchmarks/prepare_device_wheels.sh made them)
# into /tmp/site, runs `python -m benchmarks --only device`, and keeps
# <device>.json/.md, the learning curve's PNG and the log in benchmarks/results/device/
# and, where $OUT names a folder, there too.
#
#   bash benchmarks/device.sh [--device-seconds S] [--tiny]
#
# A machine with pip and a network needs no .whl/: `pip install -r requirements.txt`
# and `pip install -U "jax[cuda12]"` (or cuda13) first, then this script.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python=${PYTHON:-python3}

if compgen -G ".whl/*.whl" > /dev/null; then
  if ! "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl; then
    echo "device.sh: installing the wheels of .whl/ into /tmp/site failed" >&2
    exit 1
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

dest=benchmarks/results/device
mkdir -p "$dest"
log="$dest/device.log"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  "$python" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1
} | tee "$log"
# The section keeps to its budget (--device-seconds, default 250) by skipping rows;
# the timeout is the backstop for a compilation that runs far past its estimate.
timeout "${DEVICE_TIMEOUT:-320}" "$python" -m benchmarks --only device --out benchmarks/results "$@" \
  2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then
  cp "$log" "$OUT"/
  for f in "$dest"/*.json "$dest"/*.md "$dest"/device-minatar-*.png; do
    [ -e "$f" ] && cp "$f" "$OUT"/
  done
fi
exit "$status"
