#!/bin/sh
# Install the benchmark's peer servers from the registries, by name and pinned version: the npm
# peer from package-lock.json, the PyPI peer into a venv of its own (bench/peers/.venv, which git
# ignores): postgres-mcp needs mcp 1.x and Python >= 3.12, so it stays out of the workspace.
# requirements.txt is compiled from requirements.in with overrides.txt (see its first line).
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
python=${PEERS_PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "postgres-mcp needs Python >= 3.12: set PEERS_PYTHON to one" >&2
    exit 1
fi
../../scripts/uv venv --allow-existing --python "$python" .venv
../../scripts/uv pip sync --python .venv/bin/python requirements.txt
