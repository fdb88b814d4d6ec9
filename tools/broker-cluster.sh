#!/usr/bin/env bash
# A three-node RabbitMQ cluster on loopback, with the MQTT plugin and quorum queues for durable (persistent)
# MQTT sessions: what a fleet's clustered broker looks like, on one machine, for tests and measurements.
#
#   tools/broker-cluster.sh start [DIR]   start epmd and rabbit1..3@localhost under DIR (default: a new temp
#                                         folder), cluster them, enable rabbitmq_mqtt, create the user
#                                         station/station-secret; prints shell-style lines:
#                                           dir=DIR
#                                           mqtt_ports=P1 P2 P3        (127.0.0.1, node 1..3)
#                                           pids=PID1 PID2 PID3        (each node's Erlang VM)
#                                           user=station password=station-secret
#                                           seconds=N                  (how long the start took)
#   tools/broker-cluster.sh stop DIR      SIGTERM to the nodes and epmd it started (by PID), then SIGKILL
#                                         what is left after 30 s; removes nothing but the PID files
#   tools/broker-cluster.sh status DIR    cluster_status as rabbit1 sees it (or the first node that answers)
#   tools/broker-cluster.sh kill DIR N    SIGKILL node N (1..3), as in a power cut
#   tools/broker-cluster.sh install       only install Debian's rabbitmq-server if missing (tools/test.sh)
#
# Everything listens on 127.0.0.1 only, on ports picked at start (epmd on its own port, so a system epmd is
# never touched). Needs Debian's rabbitmq-server (apt-get install -y rabbitmq-server); runs the VMs as the
# calling user (root in CI), not through the packaged service.
set -euo pipefail

RABBIT_BIN=/usr/lib/rabbitmq/bin
if [ ! -x "$RABBIT_BIN/rabbitmq-server" ]; then
    # Installed on first use (not by tools/setup.sh: only the gated cluster tests and the fleet work need it).
    # policy-rc.d keeps the package from starting its own system node; ours run from temporary folders.
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
    status=$?; $SUDO rm -f /usr/sbin/policy-rc.d
    [ $status -eq 0 ] && [ -x "$RABBIT_BIN/rabbitmq-server" ] || { echo "rabbitmq-server could not be installed" >&2; exit 2; }
fi

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

# The environment of node N (1..3) or of the CLI tools talking to the cluster.
node_env() {
    local dir=$1 n=$2
    # shellcheck disable=SC1091
    . "$dir/ports"
    export HOME="$dir/home"                     # the shared Erlang cookie: $HOME/.erlang.cookie
    export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$EPMD_PORT
    export RABBITMQ_NODENAME="rabbit$n@localhost" RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    local amqp_var="AMQP_$n" dist_var="DIST_$n"
    export RABBITMQ_NODE_PORT=${!amqp_var} RABBITMQ_DIST_PORT=${!dist_var}
    export RABBITMQ_CONFIG_FILE="$dir/rabbit$n.conf"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log$n"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PID_FILE="$dir/rabbit$n.pid-erlang"
    export RUNNING_UNDER_SYSTEMD=1               # the script execs the VM: $! is the node's PID
    export RABBITMQ_LOGS=-                      # log to stdout (captured in log$n/console.log)
}

ctl() {  # ctl DIR N args...: rabbitmqctl against node N
    local dir=$1 n=$2; shift 2
    ( node_env "$dir" "$n"; "$RABBIT_BIN/rabbitmqctl" -n "rabbit$n@localhost" "$@" )
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

start() {
    local dir=${1:-}
    if [ -z "$dir" ]; then dir=$(mktemp -d /tmp/swapgate-rabbit.XXXXXX); fi
    mkdir -p "$dir/home" "$dir/mnesia"
    local t0; t0=$(date +%s.%N)
    {
        echo "EPMD_PORT=$(free_port)"
        for n in 1 2 3; do echo "AMQP_$n=$(free_port)"; echo "DIST_$n=$(free_port)"; echo "MQTT_$n=$(free_port)"; done
    } > "$dir/ports"
    # shellcheck disable=SC1091
    . "$dir/ports"
    [ -f "$dir/home/.erlang.cookie" ] || { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$dir/home/.erlang.cookie"; chmod 400 "$dir/home/.erlang.cookie"; }
    echo "[rabbitmq_mqtt]." > "$dir/enabled_plugins"
    for n in 1 2 3; do
        local mqtt_var="MQTT_$n" amqp_var="AMQP_$n"
        cat > "$dir/rabbit$n.conf" <<EOF
listeners.tcp.default = 127.0.0.1:${!amqp_var}
mqtt.listeners.tcp.default = 127.0.0.1:${!mqtt_var}
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
# Durable (clean_session false) MQTT sessions live in quorum queues, replicated on every node (Raft):
# a session survives the death of the node its station was connected to.
mqtt.durable_queue_type = quorum
# Quorum queues need a majority: with one of three nodes gone the other two carry on.
cluster_partition_handling = pause_minority
loopback_users = none
log.console = true
log.console.level = warning
log.file = false
EOF
    done
    # epmd of our own (its own port, loopback), so that stop can end it by PID.
    ( export ERL_EPMD_ADDRESS=127.0.0.1; exec epmd -port "$EPMD_PORT" ) </dev/null >"$dir/epmd.log" 2>&1 &
    echo $! > "$dir/epmd.pid"
    for n in 1 2 3; do
        mkdir -p "$dir/log$n"
        ( node_env "$dir" "$n"; exec "$RABBIT_BIN/rabbitmq-server" ) </dev/null >"$dir/log$n/console.log" 2>&1 &
        echo $! > "$dir/rabbit$n.pid"
    done
    for n in 1 2 3; do
        # await_startup gives up at once while the node is not registered yet: wait for it to answer first.
        for _ in $(seq 1 360); do
            ctl "$dir" "$n" ping >/dev/null 2>&1 && break
            alive "$(cat "$dir/rabbit$n.pid")" || break
            sleep 0.5
        done
        if ! ctl "$dir" "$n" await_startup --timeout 180 >/dev/null 2>&1; then
            echo "node rabbit$n did not start; see $dir/log$n/console.log" >&2
            tail -20 "$dir/log$n/console.log" >&2 || true
            exit 1
        fi
    done
    for n in 2 3; do
        ctl "$dir" "$n" stop_app >/dev/null
        ctl "$dir" "$n" join_cluster rabbit1@localhost >/dev/null
        ctl "$dir" "$n" start_app >/dev/null
    done
    ctl "$dir" 1 add_user station station-secret >/dev/null
    ctl "$dir" 1 set_permissions -p / station '.*' '.*' '.*' >/dev/null
    for n in 1 2 3; do ctl "$dir" "$n" await_startup --timeout 120 >/dev/null; done
    local t1; t1=$(date +%s.%N)
    echo "dir=$dir"
    echo "mqtt_ports=$MQTT_1 $MQTT_2 $MQTT_3"
    echo "pids=$(cat "$dir/rabbit1.pid") $(cat "$dir/rabbit2.pid") $(cat "$dir/rabbit3.pid")"
    echo "user=station password=station-secret"
    echo "seconds=$(python3 -c "print(round($t1 - $t0, 1))")"
}

stop() {
    local dir=${1:?usage: broker-cluster.sh stop DIR}
    local pids=()
    for n in 1 2 3; do
        if [ -f "$dir/rabbit$n.pid" ]; then
            local p; p=$(cat "$dir/rabbit$n.pid")
            if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; pids+=("$p"); fi
        fi
    done
    for _ in $(seq 1 300); do
        local any=0
        for p in "${pids[@]}"; do alive "$p" && any=1; done
        [ $any = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
    if [ -f "$dir/epmd.pid" ]; then
        local e; e=$(cat "$dir/epmd.pid")
        alive "$e" && kill -TERM "$e" 2>/dev/null || true
        sleep 0.2
        alive "$e" && kill -KILL "$e" 2>/dev/null || true
    fi
    rm -f "$dir"/rabbit?.pid "$dir/epmd.pid"
    echo stopped
}

status() {
    local dir=${1:?usage: broker-cluster.sh status DIR}
    for n in 1 2 3; do
        if ctl "$dir" "$n" cluster_status 2>/dev/null; then return 0; fi
    done
    echo "no node answers" >&2
    return 1
}

kill_node() {
    local dir=${1:?usage: broker-cluster.sh kill DIR N} n=${2:?usage: broker-cluster.sh kill DIR N}
    kill -KILL "$(cat "$dir/rabbit$n.pid")"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    status) status "${2:-}" ;;
    kill) kill_node "${2:-}" "${3:-}" ;;
    install) echo "rabbitmq-server installed" ;;   # the package is installed above, on first use of any command
    *) echo "usage: $0 start [DIR] | stop DIR | status DIR | kill DIR N | install" >&2; exit 2 ;;
esac
