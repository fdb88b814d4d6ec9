#!/usr/bin/env bash
# Runs the whole test suite: installs packages, builds every product (the tests start the real
# station-sim, swapgate and swapctl binaries), then `swift test`. Used by .ci/run.
# The full output is kept in .build/test-output.log; failures are repeated at the end, so the
# last lines of a CI log always name the test that failed and why.
# dist/ is not built here (tools/release.sh builds it; ArtifactTests checks it when present, else says it skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
export SWAPGATE_BIN_DIR="$(swift build --show-bin-path)"
# ClusterFailoverTests (a three-node RabbitMQ cluster, ~35 s to start, ~105 s in all) run by default;
# SWAPGATE_CLUSTER_TESTS=0 leaves them out. broker-cluster.sh installs rabbitmq-server on first use.
export SWAPGATE_CLUSTER_TESTS="${SWAPGATE_CLUSTER_TESTS:-1}"
if [ "$SWAPGATE_CLUSTER_TESTS" = 1 ]; then bash tools/broker-cluster.sh install; fi
log=.build/test-output.log
# Serialized: the end-to-end tests start real brokers, simulators and daemons on a 2-core machine.
set +e
stdbuf -oL -eL swift test --skip-build --no-parallel "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo
    echo "=== failures (full log: $log) ==="
    grep -E '✘|recorded an issue|Expectation failed|Caught error|error:|fatal' "$log" | grep -v '✔' | head -80 || true
fi
exit "$status"
