#!/usr/bin/env bash
# Create .venv (if needed) and install the testbed with its test tools, cluster launchers
# (Ray, SLURM/submitit), benchmark peer (panda-gym) and Rerun export (rerun-sdk), CPU-only.
# EXTRAS=test installs without the cluster launchers, the benchmark peer and Rerun.
# torch is installed first, pinned to the CPU build, so that stable-baselines3 does not pull
# CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The report's browser test drives Debian's Chromium with Playwright's Python package (nothing is
# downloaded at run time): installed with apt when missing (CI runs as root).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "install.sh: no /usr/bin/chromium and no root apt-get: browser tests will skip" >&2
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS:-test,cluster,bench,rerun}]"
echo "installed: $(.venv/bin/testbed --help >/dev/null && echo 'testbed CLI ready in .venv/bin/testbed')"
