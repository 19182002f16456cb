# Sourced by the scripts that build: libopus (the Opus codec, through the `audiopus_sys` crate)
# is compiled from its bundled source with CMake. When no `cmake` is on PATH, CMake 3.31 is
# installed from PyPI into ./.venv (a few seconds, once) and put on PATH; a Debian or Homebrew
# cmake is used as it is. 3.31 rather than 4.x: libopus 1.3.1's CMakeLists asks for 3.1, which
# CMake 4 no longer accepts.
if ! command -v cmake >/dev/null 2>&1 && [ ! -x .venv/bin/cmake ]; then
  echo "installing cmake 3.31 (PyPI) into .venv to build libopus ..." >&2
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check 'cmake==3.31.6' >&2
fi
if ! command -v cmake >/dev/null 2>&1; then
  export CMAKE="$PWD/.venv/bin/cmake"
  export PATH="$PWD/.venv/bin:$PATH"
fi
