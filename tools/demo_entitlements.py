#!/usr/bin/env python3
"""Prints the demo's entitlement snapshot command (entitlements.md): three riders of the demo station."""
import argparse, datetime, json

p = argparse.ArgumentParser()
p.add_argument("--issued", required=True)
p.add_argument("--expires", required=True)
p.add_argument("--network", default="SWAP-NETWORK-TG-LOME")
p.add_argument("--counted-through-seq", type=int, default=None,
               help="contract 1.1: the highest station event seq ABS's numbers count (omitted: acknowledges nothing)")
a = p.parse_args()
now = datetime.datetime.now(datetime.timezone.utc)
frm = (now - datetime.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
until = (now + datetime.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")

def ent(n, family, out, used):
    return {"plan_instance_id": f"pi-00{n}", "customer_id": f"cust-00{n}", "subscription_ref": f"SUB/2026/0004{n}",
            "status": "active", "valid_from": frm, "valid_until": until, "network_code": a.network,
            "battery_family": family, "swap_quota": 60, "swaps_used": used, "energy_quota_kwh": 129.6,
            "energy_used_kwh": round(used * 2.0, 3), "overage_allowed": False, "max_batteries": 1,
            "batteries_out": out, "version": 1}

cmd = {"request_id": f"demo-snapshot-{int(now.timestamp())}", "issued_at": a.issued, "expires_at": a.expires,
       "kind": "snapshot", "version": 1,
       "entitlements": [ent(1, "MOBBAT-45AH", ["B45-DEMO-001"], 12), ent(2, "MOBBAT-30AH", ["B30-DEMO-002"], 3),
                        ent(3, "MOBBAT-100AH", [], 0)]}
if a.counted_through_seq is not None:
    cmd["counted_through_seq"] = a.counted_through_seq
print(json.dumps(cmd))
