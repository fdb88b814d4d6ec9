#!/usr/bin/env python3
"""Odoo stand-in for swapgate: POST /api/subscription/usage_log as an Odoo 17/18 type='json' route.

Builds to shared/specs/odoo-usage-log.md. Python 3 standard library only. See docs/odoo.md.

    python3 tools/odoo_standin.py --port 0 --key KEY [--key KEY2 ...] [--database NAME]
        [--data-file F] [--auth-failure-http 200|401] [--database-failure 404|access-denied]
        [--unknown-subscription REF ...] [--host 127.0.0.1] [--tls-cert PEM --tls-key PEM]

Prints "odoo stand-in listening on HOST:PORT" once it accepts connections. SIGTERM/SIGINT exit 0.

Control API (same port, JSON): GET /_standin/records, GET /_standin/stats, POST /_standin/faults,
POST /_standin/reset; GET /web/health.
"""
import argparse
import datetime
import decimal
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE_PATH = "/api/subscription/usage_log"
MAX_BODY = 4 * 1024 * 1024

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

# Short names accepted in faults ({"exception": "ValidationError"}) and their full Odoo names.
EXCEPTION_ALIASES = {
    "ValidationError": "odoo.exceptions.ValidationError",
    "UserError": "odoo.exceptions.UserError",
    "MissingError": "odoo.exceptions.MissingError",
    "AccessError": "odoo.exceptions.AccessError",
    "AccessDenied": "odoo.exceptions.AccessDenied",
    "ConcurrencyError": "odoo.exceptions.ConcurrencyError",
    "Unauthorized": "werkzeug.exceptions.Unauthorized",
    "SerializationFailure": "psycopg2.errors.SerializationFailure",
}

HTML_PAGES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def html_page(status, detail=""):
    title = "%d %s" % (status, HTML_PAGES.get(status, "Error"))
    return ("<!doctype html>\n<html lang=en>\n<title>%s</title>\n<h1>%s</h1>\n<p>%s</p>\n"
            % (title, HTML_PAGES.get(status, "Error"), detail)).encode()


def short_name(name):
    return name.rsplit(".", 1)[-1]


class OdooError(Exception):
    """An exception the controller answers as a JSON-RPC error (HTTP 200)."""

    def __init__(self, name, message, code=200, rpc_message="Odoo Server Error"):
        super().__init__(message)
        self.name = name
        self.message = message
        self.code = code
        self.rpc_message = rpc_message


def validation(message):
    return OdooError("odoo.exceptions.ValidationError", message)


class State:
    """Records, faults and counters, shared by the request threads under one lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.keys = list(args.key)
        self.expired = set()
        self.database = args.database
        self.unknown = set(args.unknown_subscription or [])
        self.data_file = args.data_file
        self.records = []          # accepted records, arrival order
        self.by_key = {}           # idempotency_key -> record
        self.attempts = {}         # idempotency_key -> usage_log requests carrying it
        self.next_id = 1
        self.latency_faults = []   # [{"latency_ms": n, "count": n|None}]
        self.action_faults = []    # [{... action ..., "count": n|None}]
        self.reset_stats()
        self.load()

    def reset_stats(self):
        self.requests = 0
        self.recorded = 0
        self.duplicates = 0
        self.errors = {}
        self.in_flight = 0
        self.max_in_flight = 0

    # --- persistence ---
    def load(self):
        if not self.data_file or not os.path.exists(self.data_file):
            return
        with open(self.data_file, "r", encoding="utf-8") as f:
            data = json.load(f)
        self.records = data.get("records", [])
        self.by_key = {r["idempotency_key"]: r for r in self.records}
        self.attempts = {k: int(v) for k, v in data.get("attempts", {}).items()}
        self.next_id = int(data.get("next_id", len(self.records) + 1))

    def save(self):
        if not self.data_file:
            return
        tmp = self.data_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"next_id": self.next_id, "records": self.records, "attempts": self.attempts}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.data_file)

    # --- counters ---
    def count_error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1

    # --- faults ---
    def add_fault(self, fault):
        if not isinstance(fault, dict):
            raise ValueError("a fault is a JSON object")
        count = fault.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError("count must be a positive integer")
        if fault.get("clear"):
            self.latency_faults.clear()
            self.action_faults.clear()
            self.expired.clear()
            return "cleared"
        if "expire_key" in fault:
            self.expired.add(str(fault["expire_key"]))
            return "key expired"
        if "restore_key" in fault:
            self.expired.discard(str(fault["restore_key"]))
            return "key restored"
        actions = [k for k in ("status", "reset", "html", "oversize", "exception", "session_expired") if k in fault]
        if len(actions) > 1:
            raise ValueError("one action per fault: %s" % ", ".join(actions))
        if "latency_ms" in fault:
            lat = fault["latency_ms"]
            if not isinstance(lat, (int, float)) or isinstance(lat, bool) or lat < 0:
                raise ValueError("latency_ms must be a non-negative number")
        if actions:
            action = actions[0]
            if action == "status":
                st = fault["status"]
                if not isinstance(st, int) or isinstance(st, bool) or not 100 <= st <= 599:
                    raise ValueError("status must be an HTTP status code")
            if action == "exception" and not isinstance(fault["exception"], str):
                raise ValueError("exception must be an exception name")
            self.action_faults.append(dict(fault, count=count))
            return "queued"
        if "latency_ms" in fault:
            self.latency_faults.append({"latency_ms": fault["latency_ms"], "count": count})
            return "queued"
        raise ValueError("unknown fault: %s" % json.dumps(fault))

    @staticmethod
    def _take(queue):
        if not queue:
            return None
        fault = queue[0]
        if fault["count"] is not None:
            fault["count"] -= 1
            if fault["count"] <= 0:
                queue.pop(0)
        return fault

    def take_faults(self):
        """The latency (ms) and the action fault that apply to this usage_log request."""
        with self.lock:
            action = self._take(self.action_faults)
            latency = 0.0
            if action is not None and "latency_ms" in action:
                latency = float(action["latency_ms"])
            else:
                lat = self._take(self.latency_faults)
                if lat is not None:
                    latency = float(lat["latency_ms"])
            return latency, action


def check_auth(state, headers):
    """None if the request may proceed, else 'key' (bad/missing key) or 'database'."""
    header = headers.get("Authorization") or ""
    m = re.match(r"^bearer\s+(.+)$", header.strip(), re.IGNORECASE)
    with state.lock:
        if state.database is not None and headers.get("X-Odoo-Database") != state.database:
            return "database"
        if not m:
            return "key"
        key = m.group(1).strip()
        if key not in state.keys or key in state.expired:
            return "key"
    return None


def is_nonempty_str(v):
    return isinstance(v, str) and v.strip() != ""


def is_number(v):
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def validate(state, params):
    """Validates params (parsed with Decimal floats) like the Odoo controller; raises OdooError."""
    if not isinstance(params, dict):
        raise validation("params must be an object")
    for field in ("idempotency_key", "subscription_ref", "plan_instance_id", "customer_id", "station_id"):
        if not is_nonempty_str(params.get(field)):
            raise validation("Missing or empty field %s" % field)
    if len(params["idempotency_key"]) > 128:
        raise validation("idempotency_key longer than 128 characters")
    if "outlet_code" in params and not isinstance(params["outlet_code"], str):
        raise validation("outlet_code must be a string")
    occurred = params.get("occurred_at")
    if not isinstance(occurred, str) or not RFC3339.match(occurred):
        raise validation("occurred_at must be an RFC 3339 date-time, got %r" % (occurred,))
    try:
        datetime.datetime.fromisoformat(occurred.upper().replace("Z", "+00:00"))
    except ValueError:
        raise validation("occurred_at is not a valid date-time: %s" % occurred)
    if "recorded_offline" in params and not isinstance(params["recorded_offline"], bool):
        raise validation("recorded_offline must be a boolean")
    lines = params.get("lines")
    if not isinstance(lines, list) or not lines:
        raise validation("lines must be a non-empty list")
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise validation("lines[%d] must be an object" % i)
        if not is_nonempty_str(line.get("service_id")):
            raise validation("lines[%d].service_id is missing" % i)
        q = line.get("quantity")
        if not is_number(q):
            raise validation("lines[%d].quantity must be a number" % i)
        dq = q if isinstance(q, decimal.Decimal) else decimal.Decimal(q)
        if not dq.is_finite() or dq < 0:
            raise validation("lines[%d].quantity must be a non-negative number" % i)
        try:
            too_fine = dq.as_tuple().exponent < -3 and dq != dq.quantize(decimal.Decimal("0.001"))
        except decimal.InvalidOperation:
            too_fine = True
        if too_fine:
            raise validation("lines[%d].quantity %s has more than 3 decimals" % (i, q))
        if not is_nonempty_str(line.get("unit")):
            raise validation("lines[%d].unit is missing" % i)
    swap = params.get("swap")
    if not isinstance(swap, dict):
        raise validation("swap must be an object")
    if not is_nonempty_str(swap.get("swap_id")):
        raise validation("swap.swap_id is missing")
    for which in ("battery_out", "battery_in"):
        b = swap.get(which)
        if b is None and which == "battery_in":
            continue
        if not isinstance(b, dict):
            raise validation("swap.%s must be an object" % which)
        if not is_nonempty_str(b.get("id")):
            raise validation("swap.%s.id is missing" % which)
        soc = b.get("soc_pct")
        if not is_number(soc) or not 0 <= soc <= 100:
            raise validation("swap.%s.soc_pct must be a number in 0…100" % which)
        slot = b.get("slot")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 1:
            raise validation("swap.%s.slot must be a positive integer" % which)
    ref = params["subscription_ref"]
    if not ref.startswith("SUB/") or ref in state.unknown:
        raise validation("Unknown subscription %s" % ref)


class Handler(BaseHTTPRequestHandler):
    # Small writes (status line, headers, body) must not wait for delayed ACKs: like a real server, no Nagle.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3 (odoo stand-in)"

    # quiet by default; --verbose logs each request to stderr
    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    @property
    def state(self):
        return self.server.state

    # --- plumbing ---
    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body, content_type, extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj, extra_headers=()):
        self.send(status, json.dumps(obj).encode(), "application/json", extra_headers)

    def send_html(self, status, detail="", extra_headers=()):
        self.send(status, html_page(status, detail), "text/html; charset=utf-8", extra_headers)

    def send_rpc_error(self, rpc_id, err):
        debug = "Traceback (most recent call last):\n  File \"odoo/http.py\", line 2138, in __call__\n%s: %s\n" % (
            err.name, err.message)
        self.send_json(200, {"jsonrpc": "2.0", "id": rpc_id, "error": {
            "code": err.code, "message": err.rpc_message,
            "data": {"name": err.name, "message": err.message, "arguments": [err.message], "debug": debug}}})

    def drop_connection(self):
        """Closes the connection without answering (RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    # --- routing ---
    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_html(400, "Bad request body")
            return
        if path == USAGE_PATH:
            if method != "POST":
                self.send_html(405, "The method is not allowed for the requested URL.")
                return
            self.usage_log(body)
        elif path == "/web/health" and method == "GET":
            self.send_json(200, {"status": "pass"})
        elif path.startswith("/_standin/"):
            self.control(method, path, body)
        else:
            self.send_html(404, "The requested URL was not found on the server.")

    # --- control API ---
    def control(self, method, path, body):
        st = self.state
        if path == "/_standin/records" and method == "GET":
            with st.lock:
                records = [dict(r, attempts=st.attempts.get(r["idempotency_key"], 0)) for r in st.records]
                self.send_json(200, {"records": records, "attempts": dict(st.attempts)})
        elif path == "/_standin/stats" and method == "GET":
            with st.lock:
                self.send_json(200, {
                    "requests": st.requests, "recorded": st.recorded, "duplicates": st.duplicates,
                    "errors": dict(st.errors), "in_flight": st.in_flight, "max_in_flight": st.max_in_flight,
                    "records": len(st.records), "pending_faults": len(st.action_faults) + len(st.latency_faults),
                    "expired_keys": len(st.expired)})
        elif path == "/_standin/faults" and method == "POST":
            try:
                payload = json.loads(body or b"{}")
                faults = payload if isinstance(payload, list) else [payload]
                with st.lock:
                    results = [st.add_fault(f) for f in faults]
            except ValueError as e:
                self.send_json(400, {"error": str(e)})
                return
            self.send_json(200, {"ok": True, "result": results})
        elif path == "/_standin/reset" and method == "POST":
            with st.lock:
                st.records.clear()
                st.by_key.clear()
                st.attempts.clear()
                st.latency_faults.clear()
                st.action_faults.clear()
                st.expired.clear()
                in_flight = st.in_flight
                st.reset_stats()
                st.in_flight = in_flight
                st.save()
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})

    # --- the Odoo controller ---
    def usage_log(self, body):
        st = self.state
        with st.lock:
            st.requests += 1
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            self.usage_log_inner(body)
        finally:
            with st.lock:
                st.in_flight -= 1

    def usage_log_inner(self, body):
        st = self.state
        # Best-effort look at the body first, to count attempts per key even for faulted requests.
        try:
            peek = json.loads(body)
        except ValueError:
            peek = None
        rpc_id = peek.get("id") if isinstance(peek, dict) else None
        params = peek.get("params") if isinstance(peek, dict) else None
        if isinstance(params, dict) and isinstance(params.get("idempotency_key"), str):
            with st.lock:
                key = params["idempotency_key"]
                st.attempts[key] = st.attempts.get(key, 0) + 1

        latency_ms, fault = st.take_faults()
        if latency_ms > 0:
            time.sleep(latency_ms / 1000.0)
        if fault is not None:
            if fault.get("reset"):
                with st.lock:
                    st.count_error("reset")
                self.drop_connection()
                return
            if "status" in fault:
                status = fault["status"]
                headers = []
                if "retry_after" in fault:
                    headers.append(("Retry-After", str(fault["retry_after"])))
                with st.lock:
                    st.count_error("http_%d" % status)
                self.send_html(status, "stand-in fault", headers)
                return
            if fault.get("html"):
                with st.lock:
                    st.count_error("html")
                self.send(200, b"<!doctype html><html><head><title>Maintenance</title></head>"
                               b"<body><h1>We'll be back soon</h1><p>proxy maintenance page</p></body></html>",
                          "text/html; charset=utf-8")
                return
            if fault.get("oversize"):
                # A well-formed "recorded" answer padded past any sane size: the record is NOT stored.
                with st.lock:
                    st.count_error("oversize")
                size = int(fault["oversize"]) if not isinstance(fault["oversize"], bool) else 2 * 1024 * 1024
                self.send_json(200, {"jsonrpc": "2.0", "id": rpc_id,
                                     "result": {"status": "recorded", "usage_log_id": 0, "padding": "x" * size}})
                return

        # Werkzeug/Odoo request checks: content type, JSON body, JSON-RPC envelope.
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype not in ("application/json", "application/json-rpc"):
            with st.lock:
                st.count_error("unsupported_media_type")
            self.send_html(415, "Did not attempt to load JSON data because the request Content-Type "
                                "was not 'application/json'.")
            return
        try:
            envelope = json.loads(body, parse_float=decimal.Decimal)
        except (ValueError, UnicodeDecodeError):
            with st.lock:
                st.count_error("bad_request")
            self.send_html(400, "Invalid JSON data")
            return
        if not isinstance(envelope, dict) or envelope.get("jsonrpc") != "2.0" or "params" not in envelope:
            with st.lock:
                st.count_error("bad_request")
            self.send_html(400, "Invalid JSON-RPC data")
            return
        rpc_id = envelope.get("id")
        if isinstance(rpc_id, decimal.Decimal):
            rpc_id = float(rpc_id)

        # Database selection: without the right database the route does not exist (404, HTML),
        # or with --database-failure access-denied, an AccessDenied error.
        auth = check_auth(st, self.headers)
        if auth == "database" and self.server.database_failure == "404":
            with st.lock:
                st.count_error("database")
            self.send_html(404, "The requested URL was not found on the server.")
            return
        if auth is not None:
            with st.lock:
                st.count_error("AccessDenied" if auth == "key" else "database")
            if self.server.auth_failure_http == 401:
                self.send_html(401, "Invalid apikey", [("WWW-Authenticate", "Bearer")])
            else:
                self.send_rpc_error(rpc_id, OdooError("odoo.exceptions.AccessDenied", "Access Denied"))
            return

        if fault is not None:
            if fault.get("session_expired"):
                with st.lock:
                    st.count_error("SessionExpiredException")
                self.send_rpc_error(rpc_id, OdooError("odoo.http.SessionExpiredException", "Session expired",
                                                      code=100, rpc_message="Odoo Session Expired"))
                return
            if "exception" in fault:
                name = EXCEPTION_ALIASES.get(fault["exception"], fault["exception"])
                message = fault.get("message") or "%s raised by the stand-in" % short_name(name)
                with st.lock:
                    st.count_error(short_name(name))
                self.send_rpc_error(rpc_id, OdooError(name, message, code=int(fault.get("code", 200))))
                return

        try:
            validate(st, envelope["params"])
        except OdooError as err:
            with st.lock:
                st.count_error(short_name(err.name))
            self.send_rpc_error(rpc_id, err)
            return

        plain = json.loads(body)["params"]   # the record as sent, floats as floats
        key = plain["idempotency_key"]
        with st.lock:
            existing = st.by_key.get(key)
            if existing is not None:
                st.duplicates += 1
                result = {"status": "duplicate", "usage_log_id": existing["usage_log_id"]}
            else:
                record = {"usage_log_id": st.next_id, "idempotency_key": key, "rpc_id": rpc_id,
                          "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                          "database": self.headers.get("X-Odoo-Database"), "params": plain}
                st.next_id += 1
                st.records.append(record)
                st.by_key[key] = record
                st.recorded += 1
                result = {"status": "recorded", "usage_log_id": record["usage_log_id"]}
            st.save()
        self.send_json(200, {"jsonrpc": "2.0", "id": rpc_id, "result": result})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A client that went away mid-answer (timeouts) is normal here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, TimeoutError, ssl.SSLError)):
            return
        traceback.print_exc(file=sys.stderr)


def main(argv=None):
    p = argparse.ArgumentParser(description="Odoo usage_log stand-in (see docs/odoo.md)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--key", action="append", required=True, help="an accepted API key (repeatable)")
    p.add_argument("--database", help="require X-Odoo-Database to equal this")
    p.add_argument("--database-failure", choices=["404", "access-denied"], default="404",
                   help="answer to a missing/wrong X-Odoo-Database: HTTP 404 (default) or AccessDenied")
    p.add_argument("--data-file", help="keep accepted records in this JSON file across restarts")
    p.add_argument("--auth-failure-http", type=int, choices=[200, 401], default=200,
                   help="answer a bad key with HTTP 200 + AccessDenied (default) or HTTP 401")
    p.add_argument("--unknown-subscription", action="append", metavar="REF",
                   help="a SUB/... reference that Odoo does not know (repeatable)")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")

    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        # handshake in the connection's own thread, on first read, not in the accept loop
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.state = State(args)
    server.verbose = args.verbose
    server.auth_failure_http = args.auth_failure_http
    server.database_failure = args.database_failure

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    # A parent may have spawned us with these signals blocked (the mask is inherited): unblock them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print("odoo stand-in listening on %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
