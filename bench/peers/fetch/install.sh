#!/bin/sh
# Install the bulkhead-http benchmark's peer, mcp-server-fetch (PyPI), pinned with everything it
# needs, into a venv of its own (bench/peers/fetch/.venv, which git ignores): it runs on mcp 1.x,
# so it stays out of the workspace. requirements.txt is compiled from requirements.in:
#   uv pip compile requirements.in --python-version 3.11 -o requirements.txt
set -eu
cd "$(dirname "$0")"
uv=../../../scripts/uv
"$uv" venv --allow-existing --python "${PEERS_PYTHON:-python3}" .venv
"$uv" pip sync --python .venv/bin/python requirements.txt
