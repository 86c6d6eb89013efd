#!/usr/bin/env bash
# Installs the Debian packages the build needs, only when one is missing.
set -euo pipefail
need=()
command -v g++ >/dev/null || need+=(g++)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
command -v ccache >/dev/null || need+=(ccache)
# The image reader's fuzzer (make fuzz-image): clang with its libFuzzer runtime.
command -v clang++-14 >/dev/null || need+=(clang-14)
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ -x /usr/bin/python3 ]; then
  /usr/bin/python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
  inc=$(/usr/bin/python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  [ -f "$inc/Python.h" ] || need+=(python3-dev)
  # CPython's own test suite for Debian's interpreter (regrtest parity, issue #5)
  ver=$(/usr/bin/python3 -c "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
  /usr/bin/python3 -c "import test.test_bisect" 2>/dev/null || need+=("libpython$ver-testsuite")
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "lazyexec: missing system packages: ${need[*]} (run as root or install them)" >&2
  exit 1
fi
echo "lazyexec: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
