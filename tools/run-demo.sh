#!/usr/bin/env bash
# The gateway's main job on the embedded default: a simulated 12-slot cabinet with a rider (station-sim),
# a local mosquitto, the Odoo stand-in, and swapgate between them — all started here on loopback ports
# and stopped (by PID) on exit. A simulated ABS signs an entitlement snapshot and a few swap requests
# with a demo key (tools/abs_sign.py) and sends them with mosquitto_pub; everything the station publishes
# is printed from mosquitto_sub.
#
#   bash tools/run-demo.sh               # runs until Ctrl-C
#   bash tools/run-demo.sh --duration 60 # stops by itself after 60 s
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=0
[ "${1:-}" = "--duration" ] && DURATION="${2:-60}"

bash tools/setup.sh
echo "demo: building (debug)…"
for product in swapgate station-sim swapctl; do
  swift build --product "$product" > /tmp/swapgate-demo-build.log 2>&1 || { cat /tmp/swapgate-demo-build.log; exit 1; }
done
BIN=$(swift build --show-bin-path)
PY=/usr/bin/python3

RUN=$(mktemp -d /tmp/swapgate-demo.XXXXXX)
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "demo: stopping"
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: logs and the station database are in $RUN"
}
trap cleanup EXIT INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

MQTT_PORT=$(free_port); MODBUS_PORT=$(free_port); CONTROL_PORT=$(free_port); ODOO_PORT=$(free_port); METRICS_PORT=$(free_port)
STATION=TG-LOME-0007

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" > "$RUN/mosquitto.conf"
mosquitto -c "$RUN/mosquitto.conf" > "$RUN/mosquitto.log" 2>&1 & PIDS+=($!)
"$BIN/station-sim" --port "$MODBUS_PORT" --slots 12 --control-port "$CONTROL_PORT" --speed 1 \
  > "$RUN/station-sim.log" 2>&1 & PIDS+=($!)
ODOO_KEY=demo-odoo-key
if [ -f tools/odoo_standin.py ]; then
  $PY tools/odoo_standin.py --port "$ODOO_PORT" --key "$ODOO_KEY" > "$RUN/odoo.log" 2>&1 & PIDS+=($!)
fi
wait_port "$MQTT_PORT"; wait_port "$MODBUS_PORT"; wait_port "$CONTROL_PORT"
# The rider answers unlocks: returns the batteries the demo entitlements say riders hold, takes full ones.
"$BIN/station-sim" ctl --control-port "$CONTROL_PORT" \
  '{"cmd":"rider","enabled":true,"behavior":"normal","delay":2,"step_delay":1,"returns":[{"id":"B45-DEMO-001","family":2,"soc":12},{"id":"B30-DEMO-002","family":1,"soc":8}]}' >/dev/null

# A demo ABS key pair: the gateway trusts the public key; this script signs with the private one.
KEYS=$($PY tools/abs_sign.py keygen)
PRIV=$(echo "$KEYS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["private_key"])')
PUB=$(echo "$KEYS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
printf '%s' "$ODOO_KEY" > "$RUN/odoo.key"; chmod 600 "$RUN/odoo.key"

sed -e "s/@MQTT_PORT@/$MQTT_PORT/; s/@MODBUS_PORT@/$MODBUS_PORT/; s/@ODOO_PORT@/$ODOO_PORT/; s#@RUN@#$RUN#g; s#@PUB@#$PUB#; s/@STATION@/$STATION/; s/@METRICS_PORT@/$METRICS_PORT/" \
  configs/demo.yaml.in > "$RUN/swapgate.yaml"
"$BIN/swapgate" check-config -c "$RUN/swapgate.yaml"

mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v -t "dt/V01/BSS/$STATION/#" > >(sed -u 's/^/mqtt  /' | cut -c1-220) 2>&1 & PIDS+=($!)
"$BIN/swapgate" run -c "$RUN/swapgate.yaml" 2> >(tee "$RUN/swapgate.log" | sed -u 's/^/gw    /' | cut -c1-220) & PIDS+=($!)
sleep 3

abs() {  # abs COMMAND JSON — sign as ABS and publish to the station
  echo "$2" | $PY tools/abs_sign.py sign --key "$PRIV" --kid demo-1 \
    | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "cmd/V01/BSS/$STATION/$1" -s
}
NOW=$($PY -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))')
LATER=$($PY -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))')
echo "demo: ABS sends an entitlement snapshot (3 riders)"
abs entitlements "$($PY tools/demo_entitlements.py --issued "$NOW" --expires "$LATER")"
sleep 2
for i in 1 2 3; do
  echo "demo: rider cust-00$i asks for a swap"
  abs swap "{\"request_id\":\"demo-swap-$i-$RANDOM\",\"issued_at\":\"$NOW\",\"expires_at\":\"$LATER\",\"customer_id\":\"cust-00$i\",\"channel\":\"app\"}"
  sleep 12
done
echo "demo: a replayed request is refused"
abs ping "{\"request_id\":\"demo-ping\",\"issued_at\":\"$NOW\",\"expires_at\":\"$LATER\"}"
abs ping "{\"request_id\":\"demo-ping\",\"issued_at\":\"$NOW\",\"expires_at\":\"$LATER\"}"
sleep 2
echo "demo: the rider now holds:"
"$BIN/station-sim" ctl --control-port "$CONTROL_PORT" '{"cmd":"state"}' \
  | $PY -c 'import json,sys; s=json.load(sys.stdin)["state"]; print("  ", [b["id"] for b in s["rider"]["pocket"]])' || true
export SWAPCTL_SOCKET="$RUN/control.sock"
echo "demo: what a technician sees (swapctl status, slots, queues, audit — through the daemon's control socket):"
"$BIN/swapctl" status || true
"$BIN/swapctl" slots || true
"$BIN/swapctl" queues || true
"$BIN/swapctl" audit --limit 8 || true
echo "demo: metrics on http://127.0.0.1:$METRICS_PORT/metrics (swaps):"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep '^swapgate_swaps_total' || true
if [ -f tools/odoo_standin.py ]; then
  echo "demo: Odoo received:"; curl -s "http://127.0.0.1:$ODOO_PORT/_standin/stats"; echo
fi
if [ "$DURATION" != "0" ]; then sleep "$DURATION"; else echo "demo: running; Ctrl-C to stop"; wait; fi
