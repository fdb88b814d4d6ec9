#!/usr/bin/env bash
# Runs the whole test suite: installs packages, builds every product (the tests start the real
# station-sim, swapgate and swapctl binaries), then `swift test`. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
export SWAPGATE_BIN_DIR="$(swift build --show-bin-path)"
swift test --skip-build "$@"
