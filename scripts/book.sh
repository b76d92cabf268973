#!/usr/bin/env bash
# Build the course site into _build/html (installs the environment first if needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
exec python -m circuitscope.tools.book build "$@"
