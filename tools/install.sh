#!/usr/bin/env bash
# Installs swapgate on a station board (or into a directory tree): binaries, configuration, the data
# directory, the systemd unit, and (on the board itself, as root) the swapgate system user.
# Idempotent: run it again to upgrade. See docs/operator.md. `tools/install.sh --help` for options.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: tools/install.sh [options]

Installs swapgate and swapctl under ROOT:
  ROOT/usr/local/bin/swapgate, swapctl            0755
  ROOT/etc/swapgate/swapgate.yaml                 0640  from configs/swapgate.example.yaml, never
                                                        overwritten (a newer example goes to
                                                        swapgate.yaml.new beside it)
  ROOT/etc/swapgate/technicians                   0640  only if absent
  ROOT/var/lib/swapgate                           0700  the station store
  ROOT/etc/systemd/system/swapgate.service        0644  from configs/swapgate.service
Installing to / as root also creates the system group and user swapgate (member of dialout), sets
owners (config root:swapgate, data swapgate:swapgate), runs `systemctl daemon-reload` and
`systemctl enable swapgate`. It does not start the daemon: edit the configuration first.

Options:
  --root DIR        install under DIR instead of / (implies --no-systemctl and --no-users; host
                    accounts are never touched, owners are set only if DIR/etc/passwd and
                    DIR/etc/group define swapgate and this runs as root)
  --bin-dir DIR     take the built swapgate and swapctl from DIR (e.g. .build/release); default:
                    build them with `swift build -c release`
  --no-systemctl    do not run systemctl (daemon-reload, enable; disable on --uninstall)
  --no-users        do not create the swapgate group and user
  --uninstall       remove the binaries and the unit (disabling and stopping it first); keep the
                    configuration, the data and the user
  -h, --help        this text
EOF
}

say() { printf 'install: %s\n' "$*"; }
warn() { printf 'install: warning: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="/"
BIN_DIR=""
NO_SYSTEMCTL=0
NO_USERS=0
UNINSTALL=0

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) need_value "$@"; ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#*=}"; shift ;;
        --bin-dir) need_value "$@"; BIN_DIR="$2"; shift 2 ;;
        --bin-dir=*) BIN_DIR="${1#*=}"; shift ;;
        --no-systemctl) NO_SYSTEMCTL=1; shift ;;
        --no-users) NO_USERS=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[ -n "$ROOT" ] || die "--root needs a value"
ROOT="$(realpath -m -- "$ROOT")"    # absolute, symlinks resolved; need not exist yet
IS_ROOT=0; [ "$(id -u)" -eq 0 ] && IS_ROOT=1
ON_HOST=0; [ "$ROOT" = "/" ] && ON_HOST=1
P="${ROOT%/}"                      # prefix for every path: "" when installing to /

if [ "$ON_HOST" -eq 1 ]; then
    [ "$IS_ROOT" -eq 1 ] || die "changing / needs root (sudo), or use --root DIR"
else
    # A directory tree (an image, a test): the host's services and accounts are not its business.
    NO_SYSTEMCTL=1
    NO_USERS=1
fi

BIN="$P/usr/local/bin"
ETC="$P/etc/swapgate"
DATA="$P/var/lib/swapgate"
UNIT="$P/etc/systemd/system/swapgate.service"
CONFIG="$ETC/swapgate.yaml"
TECHNICIANS="$ETC/technicians"

# systemctl is useful only where systemd runs (not in a container or chroot without it); `enable`
# works without it (it only makes symlinks), daemon-reload does not.
systemd_running() { [ -d /run/systemd/system ]; }

# ---------------------------------------------------------------------------------------------------
if [ "$UNINSTALL" -eq 1 ]; then
    if [ "$NO_SYSTEMCTL" -eq 0 ] && command -v systemctl >/dev/null; then
        if systemd_running; then
            if systemctl disable --now swapgate 2>/dev/null; then say "stopped and disabled swapgate"; fi
        else
            if systemctl disable swapgate 2>/dev/null; then say "disabled swapgate"; fi
        fi
    fi
    for f in "$BIN/swapgate" "$BIN/swapctl" "$UNIT"; do
        if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; say "removed $f"; else say "absent: $f"; fi
    done
    if [ "$NO_SYSTEMCTL" -eq 0 ] && command -v systemctl >/dev/null && systemd_running; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    fi
    say "kept the configuration $ETC/ and the data $DATA/ (and the swapgate user, if any);"
    say "remove them by hand if they are no longer wanted"
    [ -d "$P/etc/systemd/system/swapgate.service.d" ] && say "kept the drop-ins in $P/etc/systemd/system/swapgate.service.d/"
    exit 0
fi

# --- binaries: given, or built here ---------------------------------------------------------------
if [ -z "$BIN_DIR" ]; then
    command -v swift >/dev/null || die "swift is not on PATH: build elsewhere and pass --bin-dir DIR"
    say "building release binaries (swift build -c release)"
    (cd "$REPO" && swift build -c release --product swapgate && swift build -c release --product swapctl)
    BIN_DIR="$(cd "$REPO" && swift build -c release --show-bin-path)"
fi
for b in swapgate swapctl; do
    [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing or not executable (build first, or check --bin-dir)"
done
for f in configs/swapgate.example.yaml configs/swapgate.service; do
    [ -f "$REPO/$f" ] || die "$REPO/$f is missing"
done

# --- accounts -------------------------------------------------------------------------------------
if [ "$NO_USERS" -eq 0 ]; then
    if getent group swapgate >/dev/null; then
        say "group swapgate exists"
    else
        groupadd --system swapgate
        say "created system group swapgate"
    fi
    if getent passwd swapgate >/dev/null; then
        say "user swapgate exists"
    else
        nologin="$(command -v nologin || true)"
        [ -n "$nologin" ] || nologin=/usr/sbin/nologin
        useradd --system --gid swapgate --home-dir /var/lib/swapgate --no-create-home \
            --shell "$nologin" --comment "swapgate station gateway" swapgate
        say "created system user swapgate (home /var/lib/swapgate, shell $nologin)"
    fi
    if getent group dialout >/dev/null; then
        if id -nG swapgate | tr ' ' '\n' | grep -qx dialout; then
            say "user swapgate is in group dialout"
        else
            usermod -a -G dialout swapgate
            say "added user swapgate to group dialout (serial devices)"
        fi
    else
        warn "no group dialout on this system: give swapgate access to the serial device yourself"
    fi
fi

# The numeric ids of user and group swapgate in the target (the host, or the tree's etc/passwd and
# etc/group), if both exist there and this runs as root; otherwise owners are left as they are.
CHOWN=0
if [ "$IS_ROOT" -eq 1 ]; then
    if [ "$ON_HOST" -eq 1 ]; then
        if SG_UID="$(getent passwd swapgate | cut -d: -f3)" && [ -n "$SG_UID" ] \
            && SG_GID="$(getent group swapgate | cut -d: -f3)" && [ -n "$SG_GID" ]; then
            CHOWN=1
        fi
    elif [ -f "$P/etc/passwd" ] && [ -f "$P/etc/group" ]; then
        SG_UID="$(awk -F: '$1 == "swapgate" { print $3; exit }' "$P/etc/passwd")"
        SG_GID="$(awk -F: '$1 == "swapgate" { print $3; exit }' "$P/etc/group")"
        [ -n "$SG_UID" ] && [ -n "$SG_GID" ] && CHOWN=1
    fi
fi
if [ "$CHOWN" -eq 0 ]; then
    if [ "$ON_HOST" -eq 1 ]; then
        warn "no user/group swapgate: owners not set; create them (run without --no-users) before starting"
    else
        say "owners not set (no swapgate user in $ROOT/etc, or not root): files belong to $(id -un)"
    fi
fi
# Numeric owners, so that they are right in a tree with its own /etc/passwd.
own_root_swapgate() { [ "$CHOWN" -eq 0 ] || chown "0:$SG_GID" "$1"; }        # config: root:swapgate
own_swapgate() { [ "$CHOWN" -eq 0 ] || chown "$SG_UID:$SG_GID" "$1"; }       # data: swapgate:swapgate

# --- files ----------------------------------------------------------------------------------------
install -d -m 0755 "$BIN" "$P/etc/systemd/system"
install -d -m 0750 "$ETC";  own_root_swapgate "$ETC"
install -d -m 0700 "$DATA"; own_swapgate "$DATA"
say "directories: $ETC (0750), $DATA (0700)"

# install(1) unlinks the old file first: a running daemon keeps its binary until it restarts.
for b in swapgate swapctl; do
    if [ -f "$BIN/$b" ] && cmp -s "$BIN_DIR/$b" "$BIN/$b"; then
        chmod 0755 "$BIN/$b"
        say "unchanged: $BIN/$b"
    else
        install -m 0755 "$BIN_DIR/$b" "$BIN/$b"
        say "installed $BIN/$b (0755)"
    fi
done

# On the board itself: can the daemon load its libraries, also inside the unit's sandbox?
if [ "$ON_HOST" -eq 1 ] && command -v ldd >/dev/null; then
    libs="$(ldd "$BIN/swapgate" 2>/dev/null || true)"
    missing="$(printf '%s\n' "$libs" | awk '/not found/ { print $1 }' | tr '\n' ' ')"
    [ -z "$missing" ] || warn "libraries not found: $missing(apt-get install libmodbus5 libmosquitto1 libsqlite3-0 libyaml-0-2 libcurl4; see docs/operator.md)"
    # ProtectHome=yes hides /home and /root from the service: a Swift runtime there (e.g. a toolchain
    # installed by swiftly) cannot be loaded. Build with --static-swift-stdlib (docs/arm64.md).
    hidden="$(printf '%s\n' "$libs" | awk '$3 ~ /^\/(home|root)\// { print $3 }' | tr '\n' ' ')"
    [ -z "$hidden" ] || warn "swapgate loads libraries from /home or /root, which the unit hides (ProtectHome=yes): $hidden; rebuild with --static-swift-stdlib"
fi

EXAMPLE="$REPO/configs/swapgate.example.yaml"
if [ ! -e "$CONFIG" ]; then
    install -m 0640 "$EXAMPLE" "$CONFIG"; own_root_swapgate "$CONFIG"
    say "installed $CONFIG (0640) from configs/swapgate.example.yaml: edit it before starting"
elif cmp -s "$EXAMPLE" "$CONFIG"; then
    say "kept $CONFIG (still the unedited example: edit it before starting)"
else
    install -m 0640 "$EXAMPLE" "$CONFIG.new"; own_root_swapgate "$CONFIG.new"
    say "kept $CONFIG untouched; the current example is in $CONFIG.new (compare: diff -u $CONFIG $CONFIG.new)"
fi
if [ -e "$CONFIG" ] && [ -n "$(find "$CONFIG" -perm /o=rwx)" ]; then
    warn "$CONFIG is accessible to others; it may name secrets: chmod 0640 $CONFIG"
fi

if [ ! -e "$TECHNICIANS" ]; then
    (
        umask 0027
        cat >"$TECHNICIANS" <<'EOF'
# swapgate technicians: who may use swapctl through the daemon's control socket.
# One line per technician:  name:sha256-hex-of-credential
# Make the hash with:       printf '%s' 'THE-CREDENTIAL' | sha256sum
# e.g.  kofi:<the 64 hex digits sha256sum printed>
# The technician's account must also be in group swapgate (usermod -a -G swapgate NAME).
# This file must stay mode 0640, owner root:swapgate.
EOF
    )
    chmod 0640 "$TECHNICIANS"; own_root_swapgate "$TECHNICIANS"
    say "installed $TECHNICIANS (0640, no technicians yet)"
else
    say "kept $TECHNICIANS"
fi

if [ -f "$UNIT" ] && cmp -s "$REPO/configs/swapgate.service" "$UNIT"; then
    chmod 0644 "$UNIT"
    say "unchanged: $UNIT"
else
    install -m 0644 "$REPO/configs/swapgate.service" "$UNIT"
    say "installed $UNIT (0644)"
fi

# --- systemd --------------------------------------------------------------------------------------
if [ "$NO_SYSTEMCTL" -eq 0 ]; then
    if ! command -v systemctl >/dev/null; then
        warn "systemctl not found: enable the unit by hand"
    else
        if systemd_running; then
            systemctl daemon-reload
            say "systemctl daemon-reload"
        else
            warn "systemd is not running here: skipped daemon-reload"
        fi
        systemctl enable swapgate
        say "systemctl enable swapgate (starts at boot; not started now)"
        if systemd_running && systemctl is-active --quiet swapgate; then
            say "swapgate is running the previous binary: systemctl restart swapgate"
        fi
    fi
else
    say "systemctl not run (--no-systemctl or --root)"
fi

cat <<EOF

Next steps:
  1. edit $CONFIG  (station.id, cabinet, mqtt, abs.public_keys, odoo; see docs/operator.md)
  2. swapgate check-config -c /etc/swapgate/swapgate.yaml
  3. systemctl start swapgate
  4. journalctl -u swapgate -f
  5. swapctl status
EOF
