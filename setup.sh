#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 and install pmbnn into it (editable, with test tools, the
# optional JAX/nutpie samplers and the scikit-learn estimator, which the tests cover).
# Idempotent: a second run only re-checks the install. Prints the interpreter it chose.
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
    local candidate
    for candidate in "${PMBNN_PYTHON:-}" python3.14 python3.13 python3.12 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    # pyenv installs versions it does not select: look in its versions folder directly, oldest
    # qualifying first (the version this project is developed and measured on).
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in $(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
            if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
                echo "$candidate"
                return 0
            fi
        done
    fi
    return 1
}

# PMBNN_PYTHON is a choice, not a hint: if it is not usable, stop rather than take another.
if [ -n "${PMBNN_PYTHON:-}" ] &&
    ! "$PMBNN_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
    echo "setup.sh: PMBNN_PYTHON=$PMBNN_PYTHON is not a Python >= 3.12; unset it or point it at one." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! python=$(find_python); then
        echo "setup.sh: no Python >= 3.12 found (pmbnn needs it for PyMC 6)." >&2
        echo "Install one (e.g. 'pyenv install 3.12') or set PMBNN_PYTHON=/path/to/python3.12." >&2
        exit 1
    fi
    echo "setup.sh: creating .venv with $python ($("$python" --version))" >&2
    "$python" -m venv .venv
fi
echo "setup.sh: installing pmbnn and its dependencies into .venv" >&2
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,jax,sklearn]" \
    >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "setup.sh: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
fi
.venv/bin/python -c 'import pmbnn' # fails loudly if the install did not take
