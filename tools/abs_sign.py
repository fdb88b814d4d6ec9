#!/usr/bin/python3
"""Make ABS command envelopes for swapgate: Ed25519 keys and signed {kid, payload, sig}.

Runs with Debian's /usr/bin/python3 and python3-cryptography (tools/setup.sh installs it).
Stands in for ABS in tests and lets operators send commands with mosquitto_pub:

  /usr/bin/python3 tools/abs_sign.py keygen > abs-key.json
  /usr/bin/python3 tools/abs_sign.py pub --key "$(jq -r .private_key abs-key.json)"
  echo '{"request_id":"r-1","issued_at":"…","expires_at":"…"}' |
    /usr/bin/python3 tools/abs_sign.py sign --key-file abs.key --kid abs-2026-1 |
    mosquitto_pub -t cmd/V01/BSS/TG-LOME-0007/ping -q 1 -s

The signature covers the payload bytes exactly as read (file or stdin): they are never
re-encoded, so what the station verifies is byte for byte what was given. With --stamp, the
tool itself writes the command JSON (adding request_id, issued_at, expires_at) and signs that.

Contract 1.1 (abs-mqtt.md "Large commands over a thin link"):
  --deflate     the payload is raw DEFLATE (RFC 1951, zlib wbits=-15) of the command JSON, the
                envelope says "enc": "deflate", and the signature covers the compressed bytes.
  --parts N / --part-size K
                split an entitlement snapshot ({"kind": "snapshot", "entitlements": [...]}) into
                N parts (or parts of K records): one envelope per line, each its own command with
                "snapshot_id" (--snapshot-id, default a UUID), "part" 1..N, "parts" N, the snapshot's
                version and counted_through_seq, and its slice of "entitlements". Each part gets its
                own request_id (given ones are suffixed "-p<part>"); needs --stamp or the times in
                the JSON. Feed the lines to `mosquitto_pub -l`.

Keys are base64 of the raw 32-byte Ed25519 seed (private) and raw 32-byte public key, the
forms swapgate's configuration takes (it also takes a PEM public key: `pub --pem`).
"""

import argparse
import base64
import binascii
import datetime
import json
import sys
import uuid
import zlib

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("abs_sign.py: python3-cryptography is missing (apt-get install python3-cryptography)")


def fail(message, status=2):
    print(f"abs_sign.py: {message}", file=sys.stderr)
    sys.exit(status)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def load_private(args):
    if args.key is not None and args.key_file is not None:
        fail("give --key or --key-file, not both")
    if args.key_file is not None:
        try:
            with open(args.key_file, "r", encoding="ascii") as f:
                text = f.read().strip()
        except OSError as e:
            fail(f"cannot read {args.key_file}: {e}")
        # A keygen JSON file works too.
        if text.startswith("{"):
            try:
                text = json.loads(text)["private_key"]
            except (ValueError, KeyError, TypeError):
                fail(f"{args.key_file}: a JSON key file needs a \"private_key\" string")
    elif args.key is not None:
        text = args.key.strip()
    else:
        fail("a private key is needed: --key BASE64 or --key-file FILE")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        fail("the private key is not base64")
    if len(raw) != 32:
        fail(f"the private key must be the raw 32-byte Ed25519 seed, got {len(raw)} bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def raw_public(private_key):
    return private_key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def rfc3339(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cmd_keygen(_args):
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(encoding=serialization.Encoding.Raw,
                             format=serialization.PrivateFormat.Raw,
                             encryption_algorithm=serialization.NoEncryption())
    print(json.dumps({"private_key": b64(seed), "public_key": b64(raw_public(key))}))


def cmd_pub(args):
    key = load_private(args)
    if args.pem:
        pem = key.public_key().public_bytes(encoding=serialization.Encoding.PEM,
                                            format=serialization.PublicFormat.SubjectPublicKeyInfo)
        sys.stdout.write(pem.decode("ascii"))
    else:
        print(b64(raw_public(key)))


def cmd_sign(args):
    key = load_private(args)
    if args.payload_file is not None:
        try:
            with open(args.payload_file, "rb") as f:
                payload = f.read()
        except OSError as e:
            fail(f"cannot read {args.payload_file}: {e}")
    else:
        payload = sys.stdin.buffer.read()

    if args.stamp is not None or not args.no_check:
        try:
            command = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            fail(f"the payload is not UTF-8 JSON ({e}); --no-check signs any bytes")
        if not isinstance(command, dict):
            fail("the payload must be a JSON object")
        if args.stamp is not None:
            now = datetime.datetime.now(datetime.timezone.utc)
            command.setdefault("request_id", str(uuid.uuid4()))
            command.setdefault("issued_at", rfc3339(now))
            command.setdefault("expires_at", rfc3339(now + datetime.timedelta(seconds=args.stamp)))
            payload = json.dumps(command, separators=(",", ":"), sort_keys=True).encode("utf-8")

    if args.parts is not None or args.part_size is not None:
        for part_payload in split_snapshot(payload, args):
            print(envelope_line(key, args, part_payload))
        return
    print(envelope_line(key, args, payload))


def deflate_raw(data):
    c = zlib.compressobj(level=9, wbits=-15)
    return c.compress(data) + c.flush()


def envelope_line(key, args, payload):
    envelope = {"kid": args.kid}
    if args.deflate:
        payload = deflate_raw(payload)
        envelope["enc"] = "deflate"
    envelope["payload"] = b64(payload)
    envelope["sig"] = b64(key.sign(payload))
    return json.dumps(envelope, separators=(",", ":"))


def split_snapshot(payload, args):
    """The payloads (bytes) of the parts of a snapshot command."""
    if args.parts is not None and args.part_size is not None:
        fail("give --parts or --part-size, not both")
    try:
        command = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"--parts needs the snapshot JSON ({e})")
    if not isinstance(command, dict) or command.get("kind") != "snapshot" or not isinstance(command.get("entitlements"), list):
        fail("--parts/--part-size split an entitlements snapshot: {\"kind\": \"snapshot\", \"entitlements\": [...]}")
    records = command.pop("entitlements")
    if args.parts is not None:
        if args.parts < 1:
            fail("--parts must be at least 1")
        count = args.parts
        size = max(1, -(-len(records) // count))
    else:
        if args.part_size < 1:
            fail("--part-size must be at least 1")
        size = args.part_size
        count = max(1, -(-len(records) // size))
    snapshot_id = args.snapshot_id or str(uuid.uuid4())
    base_id = command.pop("request_id", None)
    out = []
    for i in range(count):
        part = dict(command)
        part["snapshot_id"] = snapshot_id
        part["part"] = i + 1
        part["parts"] = count
        part["request_id"] = f"{base_id}-p{i + 1}" if base_id else str(uuid.uuid4())
        part["entitlements"] = records[i * size:(i + 1) * size]
        out.append(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return out


def main():
    parser = argparse.ArgumentParser(description="Ed25519 keys and signed command envelopes for swapgate (ABS side).")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("keygen", help="print {\"private_key\", \"public_key\"} (base64 raw keys) as JSON")

    p = sub.add_parser("pub", help="print the public key of a private key")
    p.add_argument("--key", help="base64 of the raw 32-byte private key (seed)")
    p.add_argument("--key-file", help="file holding the base64 private key, or a keygen JSON")
    p.add_argument("--pem", action="store_true", help="print a PEM SubjectPublicKeyInfo instead of raw base64")

    s = sub.add_parser("sign", help="print the envelope {kid, payload, sig} of a command JSON")
    s.add_argument("--key", help="base64 of the raw 32-byte private key (seed)")
    s.add_argument("--key-file", help="file holding the base64 private key, or a keygen JSON")
    s.add_argument("--kid", required=True, help="the key id the station knows this key by")
    s.add_argument("--payload-file", help="the command JSON (default: stdin); signed byte for byte")
    s.add_argument("--stamp", type=float, metavar="SECONDS",
                   help="add request_id (UUID), issued_at (now) and expires_at (now + SECONDS) where missing, "
                        "re-serialising the JSON compactly")
    s.add_argument("--no-check", action="store_true", help="sign the bytes even when they are not a JSON object")
    s.add_argument("--deflate", action="store_true",
                   help="compress the payload (raw DEFLATE) and sign the compressed bytes; the envelope carries \"enc\": \"deflate\"")
    s.add_argument("--parts", type=int, metavar="N", help="split a snapshot into N parts: one envelope per line")
    s.add_argument("--part-size", type=int, metavar="K", help="split a snapshot into parts of K records: one envelope per line")
    s.add_argument("--snapshot-id", help="the snapshot_id of the parts (default: a new UUID)")

    args = parser.parse_args()
    {"keygen": cmd_keygen, "pub": cmd_pub, "sign": cmd_sign}[args.command](args)


if __name__ == "__main__":
    main()
