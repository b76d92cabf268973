#!/usr/bin/env bash
# Run the whole test suite (installs the environment first if needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
exec python -m pytest "$@"
