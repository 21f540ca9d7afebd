# Sourced by the scripts (never run): which Python they run, so that none of them calls a bare
# `python` or installs into a system Python (Debian's is externally managed, PEP 668).
#
#   NB_VENV  the project's virtual environment: $NEXTBLOCK_VENV, default .venv in the repository
#            (scripts/setup.sh creates it from ${PYTHON:-python3})
#   PY       the interpreter the scripts run: the venv's once it exists, else ${PYTHON:-python3}
#
# With the venv there, its bin/ goes first on PATH (and VIRTUAL_ENV is set, as `activate` does), so
# that child processes — `python3`, `nextblock`, the tests' subprocesses, the Python helper JackTrip's
# meson build runs — resolve to the venv's interpreter too.
NB_VENV="${NEXTBLOCK_VENV:-$PWD/.venv}"
case "$NB_VENV" in /*) ;; *) NB_VENV="$PWD/$NB_VENV" ;; esac
nb_use_venv() {
  if [ -x "$NB_VENV/bin/python" ] && "$NB_VENV/bin/python" -c "" 2>/dev/null; then
    PY="$NB_VENV/bin/python"
    export VIRTUAL_ENV="$NB_VENV"
    case "$PATH" in "$NB_VENV/bin:"*) ;; *) export PATH="$NB_VENV/bin:$PATH" ;; esac
    unset PYTHONHOME
    return 0
  fi
  PY="${PYTHON:-python3}"
  return 1
}
nb_use_venv || true
