#!/usr/bin/python3
"""Outside-peer check of the simulated cabinet controller (station-sim) with pymodbus.

An independent Modbus client (pymodbus 3.0, Debian's python3-pymodbus; run it with
/usr/bin/python3) reads what the cabinet Modbus map v1 promises and checks it:
the device block, the slot summary, every slot block, the cell details, the energy
meter (unit 2), the exceptions for unmapped reads, the clock, and an unlock command
written with function 16 whose seq/result must show up in input registers 19/20.
Then it locks the slot again.

    /usr/bin/python3 tools/sim_peer_check.py --port 5020 [--slots 12]
    /usr/bin/python3 tools/sim_peer_check.py --serial /tmp/pty-b [--baud 115200 --parity N]
    /usr/bin/python3 tools/sim_peer_check.py --serial /tmp/pty-b --expect-error
    /usr/bin/python3 tools/sim_peer_check.py --port 5020 --unit 3     # a second cabinet at unit 3
    /usr/bin/python3 tools/sim_peer_check.py --port 5021 --unit 3 --no-meter   # on its own port

On success it prints one JSON line (what it read) and exits 0; on any mismatch it
prints "MISMATCH: ..." to stderr and exits 1 (2 for usage/connection problems).
--expect-error inverts the check for fault tests: one read of the device block must
fail on the client side (bad CRC, garbage, no answer), exit 0 if it did.
"""
import argparse
import json
import logging
import random
import sys
import time

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

MAGIC = 0x4F56
FAMILY_CELLS = {0: 13, 1: 13, 2: 13, 3: 16}
FAMILY_CAPACITY_AH = {1: 30, 2: 45, 3: 100}


class Mismatch(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Mismatch(message)


def s16(v):
    return v - 0x10000 if v >= 0x8000 else v


def u32(hi, lo):
    return (hi << 16) | lo


def ascii_of(regs):
    raw = bytearray()
    for r in regs:
        raw += bytes([r >> 8, r & 0xFF])
    text = raw.split(b"\0", 1)[0]
    check(all(b == 0 for b in raw[len(text):]), f"ASCII field not NUL padded: {list(regs)}")
    check(all(0x20 <= b <= 0x7E for b in text), f"ASCII field not printable: {bytes(text)!r}")
    return text.decode("ascii")


class Peer:
    def __init__(self, client, unit=1):
        self.client = client
        self.unit = unit  # the cabinet's unit id (the meter is always unit 2)

    def read(self, kind, address, count, unit=None):
        unit = self.unit if unit is None else unit
        fn = self.client.read_input_registers if kind == "input" else self.client.read_holding_registers
        rr = fn(address, count, slave=unit)
        if rr is None or rr.isError():
            raise Mismatch(f"read {kind} {address}+{count} on unit {unit} failed: {rr}")
        check(len(rr.registers) == count, f"read {kind} {address}+{count}: got {len(rr.registers)} registers")
        return list(rr.registers)

    def expect_exception(self, kind, address, count, code, unit=None):
        unit = self.unit if unit is None else unit
        fn = self.client.read_input_registers if kind == "input" else self.client.read_holding_registers
        rr = fn(address, count, slave=unit)
        check(isinstance(rr, ExceptionResponse), f"read {kind} {address}+{count} unit {unit}: expected exception {code}, got {rr}")
        check(rr.exception_code == code, f"read {kind} {address}+{count} unit {unit}: exception {rr.exception_code}, expected {code}")

    def write(self, address, values, unit=None):
        unit = self.unit if unit is None else unit
        rr = self.client.write_registers(address, values, slave=unit)
        if rr is None or rr.isError():
            raise Mismatch(f"write {address} {values} failed: {rr}")


def check_device_block(peer, args):
    d = peer.read("input", 0, 32)
    check(d[0] == MAGIC, f"magic {d[0]:#06x}, expected 0x4F56")
    check(d[1] == 1, f"map_version {d[1]}, expected 1")
    check(d[2:5] == [1, 4, 2], f"firmware {d[2:5]}, expected 1.4.2")
    n = d[5]
    check(1 <= n <= 48, f"slot_count {n} outside 1…48")
    if args.slots is not None:
        check(n == args.slots, f"slot_count {n}, expected {args.slots}")
    serial = ascii_of(d[6:14])
    if args.serial_number is not None:
        check(serial == args.serial_number, f"serial {serial!r}, expected {args.serial_number!r}")
    check(d[17] & ~0x1F == 0, f"cabinet_flags {d[17]:#x} has undefined bits")
    check(-400 <= s16(d[18]) <= 1000, f"cabinet_temp {s16(d[18])} (0.1 °C) implausible")
    check(d[22] in (0, 1), f"safe_mode {d[22]}")
    check(all(v == 0 for v in d[23:32]), f"reserved 23–31 not zero: {d[23:32]}")
    # uptime never runs backwards between two reads
    d2 = peer.read("input", 14, 2)
    check(u32(*d2) >= u32(d[14], d[15]), "uptime decreased between two reads")
    return {"slot_count": n, "serial": serial, "uptime": u32(d[14], d[15]), "heartbeat": d[16],
            "cabinet_flags": d[17], "cabinet_temp": s16(d[18]), "safe_mode": d[22]}


def check_slot(slot, b, cells):
    state = b[0]
    present, bms = bool(state & 1), bool(state & 0x40)
    check(state <= 0xFF, f"slot {slot}: state {state:#x} beyond 8 bits")
    check(bool(state & 0x20) == (b[1] != 0), f"slot {slot}: fault bit {bool(state & 0x20)} vs fault_code {b[1]}")
    check(b[1] <= 5, f"slot {slot}: fault_code {b[1]}")
    check(all(v == 0 for v in b[27:32]), f"slot {slot}: reserved +27…+31 not zero")
    info = {"slot": slot, "state": state, "fault_code": b[1], "door_open_count": b[25], "insert_count": b[26]}
    if not (present and bms):
        check(all(v == 0 for v in b[2:25]), f"slot {slot}: BMS fields not zero without battery/BMS link")
        check(all(v == 0 for v in cells[0:25] + cells[31:]) and all(v == 0x8000 for v in cells[25:31]),
              f"slot {slot}: cell detail not empty (0, probes 0x8000) without battery/BMS link")
        check(not state & 0x18, f"slot {slot}: charging/complete without battery/BMS")
        return info
    bid = ascii_of(b[2:10])
    check(len(bid) > 0, f"slot {slot}: empty battery id")
    soc, soh = b[10], b[11]
    check(soc <= 1000 and soh <= 1000, f"slot {slot}: soc {soc} / soh {soh} beyond 100 %")
    family = b[24]
    check(family in (0, 1, 2, 3), f"slot {slot}: family {family}")
    full, rem = b[18], b[19]
    if family in FAMILY_CAPACITY_AH:
        expected_full = FAMILY_CAPACITY_AH[family] * 100 * soh / 1000
        check(abs(full - expected_full) <= 2, f"slot {slot}: full_capacity {full} vs family×SoH {expected_full:.0f}")
    # SoC has 0.1 % resolution: remaining may differ from full × soc by up to 0.05 % of full (+ rounding)
    check(abs(rem - full * soc / 1000) <= full * 0.0005 + 2,
          f"slot {slot}: remaining {rem} vs SoC×full {full * soc / 1000:.0f}")
    current = s16(b[13])
    charging = bool(state & 0x08)
    check(charging == (current > 0), f"slot {slot}: charging bit {charging} vs pack_current {current}")
    if state & 0x10:
        check(soc == 1000, f"slot {slot}: charge complete at soc {soc}")
    cycles = u32(b[16], b[17])
    # cell detail
    count = cells[0]
    check(count == FAMILY_CELLS[family], f"slot {slot}: {count} cells for family {family}")
    volts = cells[1:1 + count]
    check(all(v == 0 for v in cells[1 + count:25]), f"slot {slot}: cell registers beyond the count not zero")
    check(all(2500 <= v <= 4300 for v in volts), f"slot {slot}: cell voltages out of range {volts}")
    check(b[22] == max(volts) and b[23] == min(volts), f"slot {slot}: cell_v_max/min {b[22]}/{b[23]} vs cells")
    pack_mv = b[12] * 10
    check(abs(sum(volts) - pack_mv) <= count + 10, f"slot {slot}: sum of cells {sum(volts)} mV vs pack {pack_mv} mV")
    # map 1.1: a probe the pack does not have reads 0x8000; any other value, 0 included, is a temperature
    probes = [s16(v) for v in cells[25:31] if v != 0x8000]
    check(len(probes) >= 1, f"slot {slot}: no temperature probes")
    check(s16(b[14]) == max(probes) and s16(b[15]) == min(probes),
          f"slot {slot}: temp_max/min {s16(b[14])}/{s16(b[15])} vs probes {probes}")
    check(s16(b[15]) <= s16(b[14]), f"slot {slot}: temp_min > temp_max")
    info.update({"id": bid, "soc": soc, "soh": soh, "pack_voltage": b[12], "pack_current": current,
                 "temp_max": s16(b[14]), "temp_min": s16(b[15]), "cycle_count": cycles, "full_capacity": full,
                 "remaining_capacity": rem, "protection_flags": b[20], "warning_flags": b[21],
                 "cell_v_max": b[22], "cell_v_min": b[23], "family": family, "cell_count": count,
                 "cells": volts, "probes": probes})
    return info


def check_slots(peer, n):
    summary = peer.read("input", 40, n)
    slots = []
    for first in range(1, n + 1, 3):
        k = min(3, n - first + 1)
        block = peer.read("input", 100 + (first - 1) * 32, 32 * k)
        detail = peer.read("input", 2000 + (first - 1) * 32, 32 * k)
        for j in range(k):
            s = first + j
            slots.append(check_slot(s, block[32 * j:32 * j + 32], detail[32 * j:32 * j + 32]))
    # The summary was read first; a state can change in between (charging), so re-read it and
    # accept a match with either read.
    summary2 = peer.read("input", 40, n)
    for info in slots:
        i = info["slot"] - 1
        lows = {summary[i] & 0xFF, summary2[i] & 0xFF}
        check(info["state"] in lows, f"slot {info['slot']}: summary low byte {lows} vs state {info['state']}")
        info["change_counter"] = summary2[i] >> 8
    return slots


def check_exceptions(peer, n):
    peer.expect_exception("input", 100 + n * 32, 1, 2)          # just beyond the last slot block
    peer.expect_exception("input", 40 + n - 1, 2, 2)            # runs off the summary (40…40+N−1)
    peer.expect_exception("input", 2000 + n * 32 - 1, 2, 2)     # runs off the last cell block
    peer.expect_exception("input", 30, 12, 2)                   # covers the gap 32–39
    peer.expect_exception("input", 0, 126, 3)                   # more than 125 registers
    peer.expect_exception("holding", 1004, 1, 2)                # no such holding register


def check_meter_exceptions(peer):
    peer.expect_exception("input", 7, 1, 2, unit=2)             # the meter has 0–6 only


def check_meter(peer):
    m = peer.read("input", 0, 7, unit=2)
    energy, volts, amps, power, freq = u32(m[0], m[1]), m[2], m[3], u32(m[4], m[5]), m[6]
    check(2200 <= volts <= 2400, f"meter voltage {volts / 10} V, expected ~230 V")
    check(4950 <= freq <= 5050, f"meter frequency {freq / 100} Hz, expected ~50 Hz")
    check(power > 0, "meter active power is zero (the cabinet itself draws power)")
    va = volts / 10 * amps / 100
    check(abs(va - power / 10) <= max(5, 0.02 * power / 10), f"meter: V×I {va:.1f} W vs P {power / 10} W")
    return {"import_energy": energy, "voltage": volts, "current": amps, "active_power": power, "frequency": freq}


def check_clock(peer):
    value = 1_700_000_000 + random.randint(0, 10_000_000)
    peer.write(1010, [value >> 16, value & 0xFFFF])
    back = peer.read("holding", 1010, 2)
    check(0 <= u32(*back) - value <= 60, f"clock reads {u32(*back)} after writing {value}")
    return value


def wait_result(peer, seq, timeout):
    deadline = time.monotonic() + timeout
    while True:
        r = peer.read("input", 19, 2)
        if r[0] == seq:
            return r[1]
        if time.monotonic() > deadline:
            raise Mismatch(f"register 19 never showed seq {seq} (last {r[0]}, result {r[1]})")
        time.sleep(0.05)


def check_unlock(peer, slots, args):
    # keep the watchdog fed, so that safe mode does not refuse the unlock
    wd = peer.read("holding", 1020, 1)[0]
    peer.write(1020, [(wd + 1) & 0xFFFF])
    check(peer.read("holding", 1020, 1)[0] == (wd + 1) & 0xFFFF, "watchdog register does not read back")
    if args.unlock_slot:
        slot = args.unlock_slot
    else:
        candidates = [s["slot"] for s in slots if s["state"] & 0x06 == 0x06 and not s["state"] & 0x80]
        check(candidates, "no closed, locked, in-service slot to unlock")
        slot = candidates[0]
    seq = args.seq if args.seq is not None else random.randint(1000, 60000)
    peer.write(1000, [1, slot, seq, 0])
    check(peer.read("holding", 1000, 4) == [1, slot, seq, 0], "command block does not read back")
    result = wait_result(peer, seq, args.timeout)
    check(result == 0, f"unlock slot {slot} seq {seq}: result {result}, expected 0")
    state = peer.read("input", 100 + (slot - 1) * 32, 1)[0]
    check(not state & 0x04, f"slot {slot} still locked after unlock (state {state:#x})")
    # the same seq again does nothing; then lock it again with a new seq
    peer.write(1000, [1, slot, seq, 0])
    lock_seq = (seq + 1) & 0xFFFF
    peer.write(1000, [2, slot, lock_seq, 0])
    lock_result = wait_result(peer, lock_seq, args.timeout)
    check(lock_result == 0, f"lock slot {slot} seq {lock_seq}: result {lock_result}")
    state = peer.read("input", 100 + (slot - 1) * 32, 1)[0]
    check(state & 0x04, f"slot {slot} not locked after lock (state {state:#x})")
    return {"slot": slot, "seq": seq, "result": result, "lock_seq": lock_seq, "lock_result": lock_result}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", type=int, help="Modbus TCP port")
    target.add_argument("--serial", help="serial device / pty for Modbus RTU")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--parity", default="N", choices=["N", "E", "O"])
    ap.add_argument("--slots", type=int, help="expected slot count")
    ap.add_argument("--serial-number", help="expected cabinet serial")
    ap.add_argument("--unlock-slot", type=int, help="slot to unlock (default: first closed, locked, in-service)")
    ap.add_argument("--seq", type=int, help="seq of the unlock command (default: random)")
    ap.add_argument("--no-commands", action="store_true", help="read only (no unlock/lock, no clock write)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds to wait for a command result")
    ap.add_argument("--expect-error", action="store_true", help="one device-block read must fail")
    ap.add_argument("--unit", type=int, default=1, help="the cabinet's Modbus unit id (several cabinets: 1, 3, 4, …)")
    ap.add_argument("--no-meter", action="store_true", help="skip the meter (unit 2), e.g. on a cabinet's own port")
    args = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    if args.port is not None:
        client = ModbusTcpClient(args.host, port=args.port, timeout=2, retries=0)
    else:
        client = ModbusSerialClient(port=args.serial, baudrate=args.baud, parity=args.parity,
                                    stopbits=1, bytesize=8, timeout=2, retries=0)
    if not client.connect():
        print(f"cannot connect to {args.serial or f'{args.host}:{args.port}'}", file=sys.stderr)
        return 2
    peer = Peer(client, args.unit)
    try:
        if args.expect_error:
            try:
                rr = client.read_input_registers(0, 32, slave=args.unit)
            except Exception as e:  # pymodbus raises for some framing errors
                print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
                return 0
            if rr is None or rr.isError():
                print(json.dumps({"error": str(rr)}))
                return 0
            print(f"MISMATCH: expected an error, read {rr.registers}", file=sys.stderr)
            return 1
        summary = {"device": check_device_block(peer, args)}
        n = summary["device"]["slot_count"]
        summary["slots"] = check_slots(peer, n)
        check_exceptions(peer, n)
        if not args.no_meter:
            check_meter_exceptions(peer)
            summary["meter"] = check_meter(peer)
        if not args.no_commands:
            summary["clock"] = check_clock(peer)
            summary["unlock"] = check_unlock(peer, summary["slots"], args)
        print(json.dumps(summary))
        return 0
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
