#!/usr/bin/env bash
# Installs electra-tf on a Cloud TPU VM: a virtual environment (.venv, or $VENV) with the TPU
# build of TensorFlow 2.20 (tensorflow-tpu and its libtpu) and no CPU `tensorflow` wheel beside
# it. Run it from the repository on every worker of the slice (gcloud ... ssh --worker=all).
# What it installs and why in three steps: scripts/tpu_install.py and docs/tpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# The TPU VM base images are Ubuntu 22.04, whose python3 has no venv module until
# python3-venv is installed.
if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    sudo apt-get update -q && sudo apt-get install -y -q python3-venv
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# The distribution's pip (22.0 on Ubuntu 22.04) predates the metadata-only resolution the
# TensorFlow wheels are quickest with.
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" scripts/tpu_install.py
"$VENV/bin/python" -c "import tensorflow as tf, tensorflow_text; print('TensorFlow', tf.__version__, 'with tensorflow-text', tensorflow_text.__version__)"
