#!/usr/bin/python3
"""The fleet harness (issue 12): N stations against the three-node RabbitMQ cluster of tools/broker-cluster.sh.

Run it through tools/fleet.sh (which starts and stops the cluster); directly:

  /usr/bin/python3 tools/fleet.py --cluster-dir DIR --stations N [--seconds S] [--bin-dir D]
                                  [--swap-interval S] [--kill-node K --kill-at S] [--json FILE]

Each station is a real station-sim (Modbus TCP on loopback, 12 slots, a rider that returns the battery it last
took) and a real swapgate daemon with its own folder, config, SQLite store, metrics port and control socket,
`mqtt.hosts` = the three nodes, rotated per station so the stations spread over the nodes (station i starts on
node i mod 3 + 1). A simulated ABS (this process; Ed25519 signatures as tools/abs_sign.py makes them) sends each
station a signed entitlement snapshot, then a signed `swap` every --swap-interval seconds (random phase), through
node 2. A consumer (`mosquitto_sub`, persistent session on node 3, subscribed to every station's events, replies
and status before the first station starts) timestamps every message on arrival.

At the end (after the ABS stops and the consumer has drained) it checks, per station: every `seq` from 1 to the
store's last seq (event_seq.last_seq, read from the SQLite file) arrived (lost = the ones that did not), no
event_id arrived twice (duplicated = redeliveries of one event_id), and every command got exactly one reply. It
prints per-station RSS (VmRSS) and CPU (utime+stime over the measured window) of swapgate and station-sim, the
broker's CPU and memory (the three Erlang VMs' /proc), the event delivery latency p50/p99 (receive time minus
the event's `ts`), and with --kill-node the time from SIGKILL of that node to each affected station's new
birth (status online with a higher session) at the consumer.
"""

import argparse
import base64
import datetime
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
USER, PASSWORD = "station", "station-secret"


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_ts(s):
    s = s.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime, stime
    except OSError:
        return None


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


class ABS:
    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = base64.b64encode(raw).decode()
        self.kid = "fleet-1"

    def envelope(self, body):
        now = time.time()
        body = dict(body)
        body.setdefault("request_id", "req-" + uuid.uuid4().hex[:12])
        body.setdefault("issued_at", rfc3339(now))
        body.setdefault("expires_at", rfc3339(now + 600))
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        sig = self.key.sign(payload)
        env = {"kid": self.kid, "payload": base64.b64encode(payload).decode(), "sig": base64.b64encode(sig).decode()}
        return body["request_id"], json.dumps(env)


class Consumer:
    """mosquitto_sub -v on node `port`: every line timestamped on arrival."""

    def __init__(self, port, log_path):
        self.lock = threading.Lock()
        self.events = {}      # sid -> list of (seq, event_id, ts, recv)
        self.replies = {}     # sid -> {request_id: count}
        self.reply_ok = {}    # request_id -> ok
        self.reply_code = {}  # request_id -> code (refusals)
        self.statuses = []    # (recv, sid, online, session)
        self.last_recv = time.time()
        self.probe_topic = "fleet/probe/" + uuid.uuid4().hex[:8]
        self.log = open(log_path, "w")
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", USER, "-P", PASSWORD, "-V", "mqttv311",
                "-c", "-i", "fleet-abs-" + uuid.uuid4().hex[:6], "-q", "1", "-v", "-k", "30",
                "-t", self.probe_topic, "-t", "dt/V01/BSS/+/evt/#", "-t", "dt/V01/BSS/+/reply", "-t", "dt/V01/BSS/+/status"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.probed = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        for raw in self.proc.stdout:
            recv = time.time()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            topic, _, payload = line.partition(" ")
            if topic == self.probe_topic:
                self.probed.set()
                continue
            parts = topic.split("/")
            if len(parts) < 5:
                continue
            sid, kind = parts[3], parts[4]
            try:
                obj = json.loads(payload) if payload else {}
            except ValueError:
                self.log.write("unparsable: " + line[:200] + "\n")
                continue
            with self.lock:
                self.last_recv = recv
                if kind == "evt":
                    ts = parse_ts(obj["ts"]) if "ts" in obj else recv
                    self.events.setdefault(sid, []).append((obj.get("seq"), obj.get("event_id"), ts, recv))
                elif kind == "reply":
                    rid = obj.get("request_id")
                    d = self.replies.setdefault(sid, {})
                    d[rid] = d.get(rid, 0) + 1
                    self.reply_ok[rid] = obj.get("ok")
                    self.reply_code[rid] = obj.get("code")
                elif kind == "status":
                    self.statuses.append((recv, sid, obj.get("online"), obj.get("session")))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PUBLISH_RETRIES = [0]


def publish(port, topic, message, attempts=10):
    """QoS 1 through mosquitto_pub, published again while the node drops the connection before its PUBACK: RabbitMQ
    3.10's MQTT plugin closes it when a quorum queue nacks the publish (a session queue without a leader yet, or
    whose leader died with its node); the station de-duplicates by request_id."""
    err = ""
    for attempt in range(attempts):
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", USER, "-P", PASSWORD, "-V", "mqttv311",
                            "-q", "1", "-t", topic, "-s"], input=message.encode(), capture_output=True, timeout=60)
        if r.returncode == 0:
            return True, ""
        err = (r.stdout + r.stderr).decode()[-300:]
        PUBLISH_RETRIES[0] += 1
        time.sleep(1)
    return False, err


def wait_for_line(path, pattern, timeout, proc):
    deadline = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < deadline:
        try:
            with open(path, errors="replace") as f:
                m = rx.search(f.read())
            if m:
                return m
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: process exited ({proc.returncode})")
        time.sleep(0.1)
    raise RuntimeError(f"{path}: timed out waiting for {pattern!r}")


class Station:
    def __init__(self, index, root, bin_dir, abs_, mqtt_ports):
        self.index = index
        self.sid = f"FLEET-{index:04d}"
        self.dir = os.path.join(root, self.sid)
        os.makedirs(self.dir, exist_ok=True)
        self.bin_dir = bin_dir
        self.first_node = index % 3  # 0-based
        order = [mqtt_ports[(self.first_node + k) % 3] for k in range(3)]
        self.hosts = order
        self.sim = None
        self.gw = None
        self.sim_log = os.path.join(self.dir, "sim.log")
        self.gw_log = os.path.join(self.dir, "swapgate.log")
        self.config = os.path.join(self.dir, "swapgate.yaml")
        self.store = os.path.join(self.dir, "station.sqlite")
        self.abs = abs_
        self.sent = []

    def start_sim(self):
        self.sim = subprocess.Popen([os.path.join(self.bin_dir, "station-sim"), "--slots", "12", "--port", "0", "--control-port", "0"],
                                    stdout=open(self.sim_log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        m = wait_for_line(self.sim_log, r"modbus tcp listening on [\d.]+:(\d+)", 30, self.sim)
        self.modbus_port = int(m.group(1))
        m = wait_for_line(self.sim_log, r"control listening on 127\.0\.0\.1:(\d+)", 30, self.sim)
        self.control_port = int(m.group(1))
        rider = {"cmd": "rider", "enabled": True, "delay": 1, "step_delay": 0.5,
                 "returns": [{"id": f"B45-{self.index:04d}-R1", "family": 2, "soc": 10}]}
        # Slots 1-4 hold full MOBBAT-45AH (family 2) batteries: a swap every minute finds a ready one.
        ctl = [rider]
        for slot in range(1, 5):
            ctl += [{"cmd": "remove", "slot": slot},
                    {"cmd": "insert", "slot": slot, "id": f"B45-{self.index:04d}-F{slot}", "family": 2, "soc": 100}]
        for c in ctl:
            subprocess.run([os.path.join(self.bin_dir, "station-sim"), "ctl", "--control-port", str(self.control_port), json.dumps(c)],
                           check=True, capture_output=True, timeout=30)

    def start_gateway(self):
        hosts = ", ".join(f'"127.0.0.1:{p}"' for p in self.hosts)
        with open(self.config, "w") as f:
            f.write(f"""station: {{id: {self.sid}, network_code: NET-FLEET, outlet_code: OUT-{self.index}}}
cabinet: {{host: 127.0.0.1, port: {self.modbus_port}}}
mqtt: {{hosts: [{hosts}], username: {USER}, password: {PASSWORD}, protocol: "3.1.1", keepalive: 10, reconnect_delay_min: 1, reconnect_delay_max: 4}}
store: {{path: {self.store}}}
abs: {{public_keys: {{{self.abs.kid}: "{self.abs.public}"}}}}
swaps: {{return_timeout: 60, pickup_timeout: 60}}
control: {{socket: {os.path.join(self.dir, "control.sock")}}}
metrics: {{port: {free_port()}}}
log_level: info
""")
        self.gw = subprocess.Popen([os.path.join(self.bin_dir, "swapgate"), "run", "-c", self.config],
                                   stdout=open(self.gw_log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout=120):
        wait_for_line(self.gw_log, r"accepting commands", timeout, self.gw)

    def command(self, port, name, body):
        rid, env = self.abs.envelope(body)
        ok, err = publish(port, f"cmd/V01/BSS/{self.sid}/{name}", env)
        if ok:
            self.sent.append(rid)
        return ok, err

    def stop(self):
        for p in (self.gw, self.sim):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (self.gw, self.sim):
            if p is None:
                continue
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def last_seq(self):
        try:
            con = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)
            v = con.execute("SELECT last_seq FROM event_seq WHERE id = 1").fetchone()[0]
            con.close()
            return v
        except sqlite3.Error as e:
            print(f"{self.sid}: cannot read {self.store}: {e}", file=sys.stderr)
            return None


def entitlement(index):
    now = time.time()
    return {"plan_instance_id": f"pi-{index}", "customer_id": f"cust-{index}", "subscription_ref": f"SUB/2026/{index}",
            "status": "active", "valid_from": rfc3339(now - 86400), "valid_until": rfc3339(now + 86400 * 20),
            "network_code": "NET-FLEET", "battery_family": "MOBBAT-45AH", "swap_quota": 500, "swaps_used": 12,
            "energy_quota_kwh": 1296.0, "energy_used_kwh": 20.0, "overage_allowed": False, "max_batteries": 1,
            "batteries_out": [f"B45-{index:04d}-R1"], "version": 1}


def sample(pids):
    return {pid: (proc_cpu_ticks(pid), proc_rss_kb(pid)) for pid in pids}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster-dir", required=True)
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=90, help="measured window (after every station is up)")
    ap.add_argument("--swap-interval", type=float, default=60, help="seconds between swaps at one station")
    ap.add_argument("--bin-dir", default=os.environ.get("SWAPGATE_BIN_DIR", "/work/main/.build-release/release"))
    ap.add_argument("--kill-node", type=int, default=0, help="SIGKILL this node (1..3) during the run")
    ap.add_argument("--kill-at", type=float, default=30, help="seconds into the measured window")
    ap.add_argument("--drain", type=float, default=120, help="at most this long for replies and events after the window")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--keep", action="store_true", help="keep the stations' folders")
    args = ap.parse_args()

    env = {}
    with open(os.path.join(args.cluster_dir, "ports")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    mqtt_ports = [int(env[f"MQTT_{n}"]) for n in (1, 2, 3)]
    broker_pids = [int(open(os.path.join(args.cluster_dir, f"rabbit{n}.pid")).read().strip()) for n in (1, 2, 3)]
    if args.kill_node == 3:
        sys.exit("the consumer is on node 3 and ABS publishes through node 2: kill node 1")
    root = os.path.join(args.cluster_dir, f"fleet-{args.stations}-{int(time.time())}")
    os.makedirs(root)
    abs_ = ABS()
    consumer = Consumer(mqtt_ports[2], os.path.join(root, "consumer.log"))
    stations = []
    t_setup = time.time()
    try:
        # The consumer's persistent session exists before the first station publishes.
        deadline = time.time() + 60
        while not consumer.probed.is_set() and time.time() < deadline:
            publish(mqtt_ports[2], consumer.probe_topic, "probe", attempts=1)
            consumer.probed.wait(1)
        if not consumer.probed.is_set():
            sys.exit("the consumer never received its probe")
        for i in range(1, args.stations + 1):
            st = Station(i, root, args.bin_dir, abs_, mqtt_ports)
            st.start_sim()
            st.start_gateway()
            stations.append(st)
        for st in stations:
            st.wait_ready()
        setup_seconds = time.time() - t_setup
        print(f"{len(stations)} stations up in {setup_seconds:.1f} s", flush=True)

        abs_port = mqtt_ports[1]
        for st in stations:
            ok, err = st.command(abs_port, "entitlements", {"kind": "snapshot", "version": 1, "entitlements": [entitlement(st.index)]})
            if not ok:
                print(f"{st.sid}: snapshot not published: {err}", file=sys.stderr)

        # The measured window: swaps at --swap-interval per station, random phase.
        rng = random.Random(12)
        next_swap = {st.sid: time.time() + 5 + rng.uniform(0, args.swap_interval) for st in stations}
        gw_pids = [st.gw.pid for st in stations]
        sim_pids = [st.sim.pid for st in stations]
        t0 = time.time()
        s0 = sample(gw_pids + sim_pids + broker_pids)
        killed_at = None
        pre_kill_session = {}
        rss_peak = {}
        publish_failures = 0
        while time.time() - t0 < args.seconds:
            now = time.time()
            if args.kill_node and killed_at is None and now - t0 >= args.kill_at:
                with consumer.lock:
                    for (_, sid, online, session) in consumer.statuses:
                        if online and session is not None:
                            pre_kill_session[sid] = max(pre_kill_session.get(sid, 0), session)
                os.kill(broker_pids[args.kill_node - 1], signal.SIGKILL)
                killed_at = time.time()
                print(f"node {args.kill_node} killed at {killed_at - t0:.1f} s", flush=True)
            for st in stations:
                if now >= next_swap[st.sid]:
                    next_swap[st.sid] = now + args.swap_interval
                    ok, err = st.command(abs_port, "swap", {"customer_id": f"cust-{st.index}", "channel": "app"})
                    if not ok:
                        publish_failures += 1
                        print(f"{st.sid}: swap not published: {err}", file=sys.stderr)
            for pid, (_, rss) in sample(gw_pids + sim_pids + broker_pids).items():
                if rss is not None:
                    rss_peak[pid] = max(rss_peak.get(pid, 0), rss)
            time.sleep(0.5)
        s1 = sample(gw_pids + sim_pids + broker_pids)
        window = time.time() - t0

        # Drain: every command answered, and the consumer quiet for 5 s.
        deadline = time.time() + args.drain
        while time.time() < deadline:
            with consumer.lock:
                answered = all(all(consumer.replies.get(st.sid, {}).get(r) for r in st.sent) for st in stations)
                quiet = time.time() - consumer.last_recv > 5
            if answered and quiet:
                break
            time.sleep(1)

        # Stop the stations, then read each store's last seq.
        for st in stations:
            if st.gw.poll() is None:
                st.gw.send_signal(signal.SIGTERM)
        for st in stations:
            try:
                st.gw.wait(30)
            except subprocess.TimeoutExpired:
                st.gw.kill()
                st.gw.wait()
        time.sleep(3)  # the final events (gateway.stopping …) reach the consumer
        consumer.stop()

        def cpu_pct(pid):
            a, b = s0.get(pid, (None, None))[0], s1.get(pid, (None, None))[0]
            return None if a is None or b is None else 100.0 * (b - a) / CLK_TCK / window

        refusals = {}
        for st in stations:
            for r in st.sent:
                if consumer.reply_ok.get(r) is False:
                    c = str(consumer.reply_code.get(r))
                    refusals[c] = refusals.get(c, 0) + 1
        lost = dup = commands = unanswered = answered_twice = replies_ok = 0
        latencies = []
        per_station = []
        for st in stations:
            last = st.last_seq()
            evs = consumer.events.get(st.sid, [])
            seqs = {e[0] for e in evs}
            ids = [e[1] for e in evs]
            missing = [s for s in range(1, (last or 0) + 1) if s not in seqs]
            dup_ids = len(ids) - len(set(ids))
            lost += len(missing)
            dup += dup_ids
            first_seen = {}
            for seq, eid, ts, recv in evs:
                if eid not in first_seen:
                    first_seen[eid] = recv - ts
            latencies.extend(first_seen.values())
            reps = consumer.replies.get(st.sid, {})
            commands += len(st.sent)
            unanswered += sum(1 for r in st.sent if not reps.get(r))
            answered_twice += sum(1 for r in st.sent if reps.get(r, 0) > 1)
            replies_ok += sum(1 for r in st.sent if consumer.reply_ok.get(r) is True)
            per_station.append({"sid": st.sid, "last_seq": last, "seen": len(seqs), "missing": missing[:20], "dup": dup_ids})

        gw_rss = [s1[p][1] or s0[p][1] for p in gw_pids if (s1[p][1] or s0[p][1])]
        sim_rss = [s1[p][1] or s0[p][1] for p in sim_pids if (s1[p][1] or s0[p][1])]
        gw_cpu = [c for c in (cpu_pct(p) for p in gw_pids) if c is not None]
        sim_cpu = [c for c in (cpu_pct(p) for p in sim_pids) if c is not None]
        alive_brokers = [p for p in broker_pids if s1[p][0] is not None]
        broker_cpu = sum(c for c in (cpu_pct(p) for p in alive_brokers) if c is not None)
        broker_rss = sum((s1[p][1] or 0) for p in alive_brokers)

        failover = None
        if killed_at is not None:
            affected = [st.sid for st in stations if st.first_node == args.kill_node - 1]
            times = []
            not_back = []
            for sid in affected:
                before = pre_kill_session.get(sid, 0)
                back = [recv for (recv, s, online, session) in consumer.statuses
                        if s == sid and online and session is not None and session > before and recv >= killed_at]
                if back:
                    times.append(min(back) - killed_at)
                else:
                    not_back.append(sid)
            failover = {"node": args.kill_node, "stations_on_node": len(affected), "reconnected": len(times),
                        "not_reconnected": not_back,
                        "reconnect_s_median": round(statistics.median(times), 2) if times else None,
                        "reconnect_s_max": round(max(times), 2) if times else None}

        result = {
            "stations": len(stations), "window_s": round(window, 1), "setup_s": round(setup_seconds, 1),
            "swap_interval_s": args.swap_interval,
            "events": sum(len(consumer.events.get(st.sid, [])) for st in stations),
            "events_lost": lost, "events_duplicated": dup,
            "commands": commands, "commands_unanswered": unanswered, "commands_answered_twice": answered_twice,
            "commands_ok": replies_ok,
            "refusals": {c: n for c, n in sorted(refusals.items())}, "publish_failures": publish_failures, "publish_retries": PUBLISH_RETRIES[0],
            "swapgate_rss_mb_mean": round(statistics.mean(gw_rss) / 1024, 1) if gw_rss else None,
            "swapgate_rss_mb_peak": round(max(rss_peak.get(p, 0) for p in gw_pids) / 1024, 1),
            "swapgate_cpu_pct_mean": round(statistics.mean(gw_cpu), 2) if gw_cpu else None,
            "sim_rss_mb_mean": round(statistics.mean(sim_rss) / 1024, 1) if sim_rss else None,
            "sim_cpu_pct_mean": round(statistics.mean(sim_cpu), 2) if sim_cpu else None,
            "broker_cpu_pct": round(broker_cpu, 1), "broker_rss_mb": round(broker_rss / 1024, 1),
            "broker_nodes_measured": len(alive_brokers),
            "latency_ms_p50": round(1000 * pct(latencies, 50), 1) if latencies else None,
            "latency_ms_p99": round(1000 * pct(latencies, 99), 1) if latencies else None,
            "failover": failover,
            "stations_with_loss": [s for s in per_station if s["missing"] or s["last_seq"] is None],
        }
        print(json.dumps(result, indent=2), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        ok = lost == 0 and unanswered == 0 and answered_twice == 0 and (failover is None or not failover["not_reconnected"])
        return 0 if ok else 1
    finally:
        for st in stations:
            st.stop()
        consumer.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", root])


if __name__ == "__main__":
    sys.exit(main())
