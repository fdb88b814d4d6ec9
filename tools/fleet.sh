#!/usr/bin/env bash
# The fleet harness (issue 12; README "Fleet", docs/fleet-broker.md): N stations (station-sim + swapgate each)
# against a three-node RabbitMQ cluster on this machine, a simulated ABS sending signed snapshots and swaps, and a
# consumer checking every station's events gap-free by seq and unduplicated by event_id. Prints the figures as
# JSON (tools/fleet.py has the details).
#
#   tools/fleet.sh [--cluster-dir DIR] [fleet.py options: --stations N --seconds S --swap-interval S
#                  --kill-node 1 --kill-at S --bin-dir D --json FILE]
#
# Without --cluster-dir it starts the cluster (tools/broker-cluster.sh start), runs, and stops it; with one it
# uses that running cluster and leaves it running (several runs on one cluster: each run's stations and consumer
# have their own ids). Binaries: --bin-dir, else $SWAPGATE_BIN_DIR, else .build-release/release (build them with
# `swift build -c release --build-path .build-release`). Exit status 0 only when nothing was lost, every command
# was answered exactly once and (with --kill-node) every station of the killed node came back.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster_dir=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cluster-dir) cluster_dir=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
own=0
if [ -z "$cluster_dir" ]; then
    cluster_dir=$(mktemp -d /tmp/swapgate-fleet.XXXXXX)
    own=1
    trap 'bash tools/broker-cluster.sh stop "$cluster_dir" >/dev/null || true' EXIT
    bash tools/broker-cluster.sh start "$cluster_dir"
fi
/usr/bin/python3 tools/fleet.py --cluster-dir "$cluster_dir" "${args[@]}"
