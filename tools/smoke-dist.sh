#!/usr/bin/env bash
# Smoke check of the deployable artifacts (tools/release.sh runs it last; ArtifactTests runs it on dist/ when dist/
# exists; tools/test.sh does not build dist/): each binary starts (--help, swapgate --version), `swapgate check-config` passes on the demo configuration,
# and a short demo runs — dist/station-sim (a 12-slot cabinet with a rider) and dist/swapgate against a mosquitto on a
# free loopback port, an entitlement snapshot, a ping and a swap signed as ABS (tools/abs_sign.py) — with what the
# station publishes seen by mosquitto_sub: status online, entitlements.applied, the ping's reply, swap.completed.
# While the daemon runs, its /proc/PID/maps is read: no ICU (libicu*, lib_FoundationICU) and nothing from the Swift
# toolchain may be mapped. Prints the ICU data linked into the binary (from NAME.debug), for docs/board-footprint.md.
#
#   bash tools/smoke-dist.sh            # dist/
#   bash tools/smoke-dist.sh DIR        # the three binaries in DIR
# Exit status 0 when every check passed; the last line is "smoke: PASS" or "smoke: FAIL …".
set -uo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-dist}"
PY=/usr/bin/python3
fails=()
fail() { echo "smoke: check failed: $*" >&2; fails+=("$*"); }

for p in swapgate swapctl station-sim; do
    [ -x "$DIR/$p" ] || { echo "smoke: FAIL $DIR/$p is missing (run tools/release.sh)"; exit 1; }
done
for tool in mosquitto mosquitto_sub mosquitto_pub; do
    command -v "$tool" >/dev/null || { echo "smoke: FAIL $tool is missing (bash tools/setup.sh)"; exit 1; }
done

# 1. Each binary starts.
for p in swapgate swapctl station-sim; do
    if out=$("$DIR/$p" --help 2>&1) && [ -n "$out" ]; then echo "smoke: $p --help ok"; else fail "$p --help: $out"; fi
done
if v=$("$DIR/swapgate" --version 2>&1) && [[ "$v" =~ ^[0-9]+\.[0-9]+ ]]; then echo "smoke: swapgate --version $v"; else fail "swapgate --version: $v"; fi

RUN=$(mktemp -d /tmp/swapgate-smoke.XXXXXX)
PIDS=()
cleanup() {
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ ${#fails[@]} -eq 0 ]; then rm -rf "$RUN"; fi
}
trap cleanup EXIT
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
seen() { grep -q -- "$1" "$RUN/mqtt.log" 2>/dev/null; }
wait_seen() {  # wait_seen PATTERN SECONDS
    for _ in $(seq 1 $(( $2 * 10 ))); do seen "$1" && return 0; sleep 0.1; done; return 1
}

MQTT_PORT=$(free_port); MODBUS_PORT=$(free_port); CONTROL_PORT=$(free_port); ODOO_PORT=$(free_port); METRICS_PORT=$(free_port)
STATION=TG-SMOKE-0001
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" > "$RUN/mosquitto.conf"
mosquitto -c "$RUN/mosquitto.conf" > "$RUN/mosquitto.log" 2>&1 & PIDS+=($!)
"$DIR/station-sim" --port "$MODBUS_PORT" --slots 12 --control-port "$CONTROL_PORT" --speed 1 > "$RUN/station-sim.log" 2>&1 & PIDS+=($!)
wait_port "$MQTT_PORT" || fail "mosquitto did not listen on $MQTT_PORT"
wait_port "$MODBUS_PORT" && wait_port "$CONTROL_PORT" || fail "dist station-sim did not listen: $(tail -5 "$RUN/station-sim.log")"
"$DIR/station-sim" ctl --control-port "$CONTROL_PORT" \
    '{"cmd":"rider","enabled":true,"behavior":"normal","delay":1,"step_delay":1,"returns":[{"id":"B45-DEMO-001","family":2,"soc":12}]}' \
    > "$RUN/rider.json" 2>&1 || fail "station-sim ctl rider: $(cat "$RUN/rider.json")"

KEYS=$($PY tools/abs_sign.py keygen)
PRIV=$(echo "$KEYS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["private_key"])')
PUB=$(echo "$KEYS" | $PY -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
printf 'smoke-odoo-key' > "$RUN/odoo.key"; chmod 600 "$RUN/odoo.key"
sed -e "s/@MQTT_PORT@/$MQTT_PORT/; s/@MODBUS_PORT@/$MODBUS_PORT/; s/@ODOO_PORT@/$ODOO_PORT/; s#@RUN@#$RUN#g; s#@PUB@#$PUB#; s/@STATION@/$STATION/; s/@METRICS_PORT@/$METRICS_PORT/" \
    configs/demo.yaml.in > "$RUN/swapgate.yaml"

# 2. check-config on the demo configuration.
if out=$("$DIR/swapgate" check-config -c "$RUN/swapgate.yaml" 2>&1); then echo "smoke: swapgate check-config ok"; else fail "check-config: $out"; fi

# 3. The demo.
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v -t "dt/V01/BSS/$STATION/#" > "$RUN/mqtt.log" 2>&1 & PIDS+=($!)
"$DIR/swapgate" run -c "$RUN/swapgate.yaml" > "$RUN/swapgate.log" 2>&1 & GW=$!; PIDS+=($GW)
wait_seen '"online":true' 15 || fail "no status online from dist/swapgate: $(tail -5 "$RUN/swapgate.log")"

# ICU: nothing of it (nor of the Swift toolchain) mapped into the running daemon.
if [ -r "/proc/$GW/maps" ]; then
    mapped=$(awk '$6 ~ /\// {print $6}' "/proc/$GW/maps" | sort -u)
    if echo "$mapped" | grep -E -q 'libicu|_FoundationICU|FoundationInternationalization|/swift/'; then
        fail "ICU or a Swift toolchain library is mapped into dist/swapgate: $(echo "$mapped" | grep -E 'icu|ICU|swift' | tr '\n' ' ')"
    else
        echo "smoke: dist/swapgate maps no ICU library ($(echo "$mapped" | wc -l) files mapped: $(echo "$mapped" | xargs -n1 basename | tr '\n' ' '))"
    fi
fi

abs() {  # abs COMMAND JSON: sign as ABS and publish to the station
    echo "$2" | $PY tools/abs_sign.py sign --key "$PRIV" --kid demo-1 \
        | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "cmd/V01/BSS/$STATION/$1" -s
}
NOW=$($PY -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))')
LATER=$($PY -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))')
abs entitlements "$($PY tools/demo_entitlements.py --issued "$NOW" --expires "$LATER")"
wait_seen 'entitlements.applied' 15 || fail "no entitlements.applied event"
abs ping "{\"request_id\":\"smoke-ping-$RANDOM\",\"issued_at\":\"$NOW\",\"expires_at\":\"$LATER\"}"
wait_seen 'smoke-ping-' 10 || fail "no reply to the ping"
abs swap "{\"request_id\":\"smoke-swap-$RANDOM\",\"issued_at\":\"$NOW\",\"expires_at\":\"$LATER\",\"customer_id\":\"cust-001\",\"channel\":\"app\"}"
wait_seen 'swap.completed' 40 || fail "no swap.completed: $(grep -o '"type":"[a-z_.]*"' "$RUN/mqtt.log" | sort | uniq -c | tr '\n' ' ')"
echo "smoke: demo: $(wc -l < "$RUN/mqtt.log") messages seen by mosquitto_sub; events: $(grep -o '"type":"[a-z_.]*"' "$RUN/mqtt.log" | sed 's/"type"://; s/"//g' | sort -u | tr '\n' ' ')"
kill -0 "$GW" 2>/dev/null || fail "dist/swapgate exited during the demo: $(tail -5 "$RUN/swapgate.log")"

# ICU data linked into the binary (informational; docs/board-footprint.md).
for p in swapgate swapctl station-sim; do
    if [ -f "$DIR/$p.debug" ]; then
        icu=$(nm -S "$DIR/$p.debug" 2>/dev/null | awk '$4 ~ /^icudt[0-9]+_dat$/ {print $2}')
        if [ -n "$icu" ]; then
            echo "smoke: $p links ICU data: $(awk -v b=$((16#$icu)) 'BEGIN{printf "%.1f MB", b/1048576}') (symbol icudt*_dat)"
        else
            echo "smoke: $p links no ICU data"
        fi
    fi
done

if [ ${#fails[@]} -eq 0 ]; then echo "smoke: PASS"; exit 0; fi
echo "smoke: FAIL (${#fails[@]} checks; logs kept in $RUN)"
exit 1
