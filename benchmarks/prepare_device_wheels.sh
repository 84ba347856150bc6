#!/usr/bin/env bash
# Downloads, as Python 3.12 manylinux x86_64 wheels, the packages the lent accelerator
# machine lacks (its image has jax, flax, optax, chex, orbax, numpy, matplotlib,
# seaborn, six, tqdm, protobuf, rich and typing-extensions, and no network), so that
# benchmarks/device.sh can install them there from the carried folder.
#
#   bash benchmarks/prepare_device_wheels.sh [DIR]      (default: .whl in the repo root)
#
# Versions: requirements.txt's pins; the requirements of those packages that the image
# lacks (and requirements.txt does not pin) at the versions a pip install of
# requirements.txt resolves to. With the default DIR, /.whl/ is added to the checkout's
# .git/info/exclude, so that the wheels are never committed; they travel with a device
# call as `carry: [".whl"]`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dest="${1:-$root/.whl}"

# Missing on the device image and pinned in requirements.txt.
pinned=(mctx gymnasium gymnax pgx svgwrite tyro tensorboardX)
# Their requirements that the image lacks, not in requirements.txt.
extra=(farama-notifications==0.0.6 docstring-parser==0.18.0 typeguard==4.6.1)

specs=()
for name in "${pinned[@]}"; do
  line="$(grep -i -E "^${name}==" requirements.txt || true)"
  if [ -z "$line" ]; then
    echo "prepare_device_wheels: ${name} is not pinned in requirements.txt; expected a NAME==VERSION line" >&2
    exit 2
  fi
  specs+=("$line")
done
specs+=("${extra[@]}")

if [ "$#" -eq 0 ]; then
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  mkdir -p "$(dirname "$exclude")"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
fi
rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$dest" "${specs[@]}"
# One version of each: two would stop the install on the device.
count="$(ls "$dest"/*.whl | wc -l)"
if [ "$count" -ne "${#specs[@]}" ]; then
  echo "prepare_device_wheels: ${count} wheels in ${dest} for ${#specs[@]} packages; expected one each" >&2
  exit 1
fi
ls -1 "$dest"
du -sh "$dest"
