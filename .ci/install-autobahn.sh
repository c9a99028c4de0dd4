#!/usr/bin/env bash
# Create the Python 2.7 environment that Autobahn's wstest needs (autobahn/run.py reuses it).
# Idempotent: an environment already built from the same pins is left alone. Run as root.
#   usage: .ci/install-autobahn.sh
# Needs: Python 2.7.18 under pyenv ($(pyenv root)/versions/2.7.18; override with PYTHON27=/path/python2.7),
# a Python 3 with the venv module. Installs (PyPI, pinned): virtualenv<20.22 in .tools/autobahn/venv-tools,
# autobahn/requirements-py27.txt + autobahntestsuite==25.10.1 in .tools/autobahn/venv-ab27.
# WSSTREAM_TOOLS_DIR moves .tools/autobahn elsewhere.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 "$repo/autobahn/run.py" --setup-only
