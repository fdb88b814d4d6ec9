#!/usr/bin/env bash
# Runs the whole test suite: installs packages, builds every product (the tests start the real
# station-sim, swapgate and swapctl binaries), then `swift test`. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
export SWAPGATE_BIN_DIR="$(swift build --show-bin-path)"
# Serialized: the end-to-end tests start real brokers, simulators and daemons on a 2-core machine.
swift test --skip-build --no-parallel "$@"
