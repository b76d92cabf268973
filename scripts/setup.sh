#!/usr/bin/env bash
# Create .venv (once) and install circuitscope with every extra into it.
# Sourced by book.sh and test.sh, so each quick-start command works on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CIRCUITSCOPE_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# PIP_FIND_LINKS is emptied so pip takes torch from the package index: a local CPU-only torch
# wheel would not match the index's torchvision.
stamp="$venv/.circuitscope-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  # Say what is coming: the first install downloads PyTorch (a CUDA build, about 5 GB), which
  # takes minutes. pip's own lines then name each download and its size.
  echo "Installing circuitscope and its dependencies into $venv (first time: PyTorch, about 5 GB; a few minutes)..." >&2
  PIP_FIND_LINKS= "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root[dev]" \
    2> >(grep -v "^WARNING: Location" >&2) \
    | { grep -E --line-buffered "^(Collecting|  Downloading|Successfully installed)" >&2 || true; }
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
# The course's third-party data (the articles' figures, Lucid's photo and activations, the class
# labels) is fetched by URL and hash (circuitscope.core.registry). A checkout beside ../shared uses its
# copy as a mirror, so builds and tests here and in CI need no network.
if [ -z "${CIRCUITSCOPE_MIRROR:-}" ] && [ -d "$root/../shared/data" ]; then
  export CIRCUITSCOPE_MIRROR="$(cd "$root/../shared/data" && pwd)"
fi
