#!/usr/bin/env bash
# Installs what swapgate needs to build, test and run on Debian 12 (bookworm) or later.
# Idempotent: apt runs only when a package is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  pkg-config
  libmodbus-dev        # Modbus (gateway side)
  libmosquitto-dev     # MQTT client library
  libsqlite3-dev       # the station store (Sources/CSQLite: the system SQLite)
  libyaml-dev          # the configuration file parser (Sources/CLibYAML)
  libssl-dev           # OpenSSL libcrypto: Ed25519 of ABS commands (Sources/COpenSSL)
  libcurl4-openssl-dev # HTTP(S) to Odoo (Sources/CCurl)
  zlib1g-dev           # raw DEFLATE of `enc: deflate` ABS commands (Sources/CZlib)
  mosquitto            # broker for the demo and the tests
  mosquitto-clients    # mosquitto_sub/mosquitto_pub: outside peers in tests and the demo
  mbpoll               # outside Modbus peer in tests
  python3-pymodbus     # outside Modbus peer in tests (Debian's /usr/bin/python3)
  python3-cryptography # tools/abs_sign.py: Ed25519 keys and signed ABS command envelopes (demo, tests)
  python3              # the Odoo stand-in and the peer scripts
  socat                # pty pairs for Modbus RTU tests
  sqlite3              # crash tests of the store and technicians' inspection
  openssl              # TLS certificates made by the tests
  procps               # ps/pkill used by scripts
  curl                 # the demo and tests scrape /metrics and /health
  python3-prometheus-client  # outside peer: parses the /metrics exposition in tests
  faketime             # libfaketime: the daemon under a board clock in 1970 / a year ahead (TrustedTimeTests)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift (6.1 or later) is not on PATH; install the Swift toolchain first" >&2; exit 1; }
echo "setup: all packages present"
