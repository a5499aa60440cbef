#!/usr/bin/env python3
"""Hostile-client soak of `cxlkv serve` (issue 18): every kind of bad client at once, over
loopback, beside well-behaved clients that verify every byte they read back.

    /usr/bin/python3 tests/serve/soak.py --cxlkv build/dev/cxlkv [--seconds 30]

The server runs with short deadlines and small limits (so each attack is cut many times in
the run) and its stderr on a pipe that nothing reads. Attackers, each in a loop: stalled PUTs
(a header and one byte), trickled PUTs, GETs and LISTs whose replies are never read,
duplicate PUTs, PUTs cut mid-payload, floods of idle connections past the connection limit,
bad frames of every kind, random bytes, and a metrics client that sends a byte every 1.5 s.
Good clients PUT chunks of several sizes, GET earlier ones and compare every byte, EXIST and
LIST, with a 10 s socket timeout. Fails (exit 1) on any wrong byte, any good request that is
not answered, a server that dies, or attacks that were never cut; prints what happened.
Standard library only; loopback only; bounded (the run, then at most ~15 s to stop)."""
import argparse
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lm_client import GET, LIST, PUT, SUCCESS, Client, request  # noqa: E402
import serve_process  # noqa: E402

MIB = 1 << 20


def content(key, size):
    """The bytes a good client stores under key: a pattern that differs for every key."""
    seed = sum(key.encode()) * 131 + len(key)
    block = bytes((seed + i * 7) & 0xFF for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


class Soak:
    def __init__(self, binary, seconds):
        self.seconds = seconds
        self.stop = threading.Event()
        self.failures = []
        self.counts = {}
        self.lock = threading.Lock()
        self.latencies = []
        args = ["--port", "0", "--metrics-port", "0", "--tier", "dram,256M",
                "--max-payload", "64M", "--request-timeout-ms", "1500",
                "--reply-timeout-ms", "1500", "--min-transfer-rate", "1M",
                "--max-connections", "96", "--idle-timeout-ms", "4000",
                "--max-reserved", "64M", "--max-reply-bytes", "64M",
                "--max-list-bytes", "16K", "--threads", "2"]
        # stderr goes to a pipe nothing reads: logging must never block serving.
        try:
            self.proc, self.port, self.metrics_port = serve_process.start(
                binary, args, subprocess.PIPE)
        except RuntimeError:
            raise SystemExit("soak: cxlkv serve did not start")
        self.addr = ("127.0.0.1", self.port)

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, why):
        with self.lock:
            self.failures.append(why)
        self.stop.set()

    # --- helpers ---
    def sock(self, small_window=False, timeout=10):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_window:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(timeout)
        s.connect(self.addr)
        return s

    def wait_closed(self, s, limit=8):
        """Whether the server closes s within limit seconds (reading and dropping data)."""
        s.settimeout(limit)
        end = time.monotonic() + limit
        try:
            while time.monotonic() < end:
                if not s.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            s.close()
        return False

    def loop(self, name, fn):
        def run():
            while not self.stop.is_set():
                try:
                    fn()
                    self.count(name)
                except OSError:
                    self.count(name + " (refused or reset)")
                    time.sleep(0.05)
        return threading.Thread(target=run, name=name, daemon=True)

    # --- attackers ---
    def stalled_put(self):
        s = self.sock()
        s.sendall(request(PUT, f"stalled-{random.random()}", 32 * MIB, 5, 0, (32 * MIB, 0, 0, 0)))
        s.sendall(b"x")
        if self.wait_closed(s):
            self.count("stalled PUT cut")

    def trickled_put(self):
        s = self.sock()
        s.sendall(request(PUT, f"trickle-{random.random()}", 8 * MIB, 5, 0, (8 * MIB, 0, 0, 0)))
        try:
            for _ in range(60):
                if self.stop.is_set():
                    break
                s.sendall(b"t" * 1024)
                time.sleep(0.1)
        except OSError:
            self.count("trickled PUT cut")
        s.close()

    def unread_get(self):
        s = self.sock(small_window=True)
        s.sendall(request(GET, f"big-{random.randrange(4)}"))
        if self.wait_closed(s):
            self.count("unread GET cut")

    def unread_list(self):
        s = self.sock(small_window=True)
        s.sendall(request(LIST) * 8)
        time.sleep(1)
        s.close()

    def duplicate_puts(self):
        with Client(self.addr, timeout=10) as c:
            data = content("big-0", 16 * MIB)
            for _ in range(4):
                c.put("big-0", data)
            c.exist("big-0")

    def cut_put(self):
        s = self.sock()
        s.sendall(request(PUT, f"cut-{random.random()}", 4 * MIB, 5, 0, (4 * MIB, 0, 0, 0)))
        s.sendall(b"c" * (2 * MIB))
        s.close()

    def connection_flood(self):
        socks = []
        try:
            for _ in range(160):
                socks.append(self.sock(timeout=2))
        finally:
            time.sleep(1.5)
            for s in socks:
                s.close()

    def bad_frames(self):
        frames = [
            struct.pack("9i", 9, 0, 1, 2, 0, 0, 0, 0, 0) + b"k".ljust(150),      # unknown command
            request(PUT, "neg", -5),                                             # negative length
            request(PUT, "huge", 1 << 30, 5, 0, (1 << 30, 0, 0, 0)),              # over max payload
            request(GET, b"bad\x01key"),                                         # control character
            request(GET, b"\xff\xfe"),                                           # not UTF-8
            request(PUT, "shape", 4096, 1, 3, (2, 4, 8, 0)),                      # bad layout
            bytes(random.randrange(256) for _ in range(186)),                    # noise
            request(GET, "half")[:90],                                           # cut header
        ]
        for f in frames:
            try:
                s = self.sock(timeout=5)
                s.sendall(f)
                s.shutdown(socket.SHUT_WR)
                self.wait_closed(s, 5)
                self.count("bad frame")
            except OSError:
                pass

    def slow_metrics(self):
        s = socket.create_connection(("127.0.0.1", self.metrics_port), timeout=5)
        try:
            for c in b"GET /m":
                s.send(bytes([c]))
                time.sleep(1.5)
        except OSError:
            self.count("slow metrics client cut")
        s.close()

    def idle(self):
        s = self.sock()
        if self.wait_closed(s, 10):
            self.count("idle connection closed")

    # --- the well-behaved clients ---
    def good(self, tid):
        rng = random.Random(tid)
        mine = []
        try:
            with Client(self.addr, timeout=10) as c:
                n = 0
                while not self.stop.is_set():
                    key = f"good-{tid}-{n}"
                    size = rng.choice([2 * MIB, MIB + 4096, 256 * 1024, 4096])
                    t0 = time.monotonic()
                    c.put(key, content(key, size))
                    mine.append((key, size))
                    old_key, old_size = rng.choice(mine[-20:])  # recent: likely still cached
                    reply, data = c.get(old_key)
                    if reply.code == SUCCESS:
                        if data != content(old_key, old_size):
                            self.fail(f"good client {tid}: GET {old_key} returned wrong bytes")
                            return
                        if (reply.fmt, reply.dtype, reply.shape) != (5, 0, (old_size, 0, 0, 0)):
                            self.fail(f"good client {tid}: GET {old_key} layout {reply.shape}")
                            return
                        self.count("good GET verified")
                    else:
                        self.count("good GET missed")
                    if not c.exist(key):
                        self.count("good PUT not stored")
                    if n % 20 == 0:
                        # FAIL is an answer too: the unread LISTs may hold the reply budget.
                        c.sock.sendall(request(LIST))
                        r = c.reply()
                        if r.code == SUCCESS:
                            listed = c.recv_exactly(r.length).decode().split("\n")
                            if r.length > 16384 or any(not k for k in listed if r.length):
                                self.fail(f"good client {tid}: LIST of {r.length} bytes")
                        self.count("good LIST " + ("answered" if r.code == SUCCESS else "FAIL"))
                    self.latencies.append(time.monotonic() - t0)
                    n += 1
        except (OSError, AssertionError) as e:
            self.fail(f"good client {tid} was not served: {e!r}")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def run(self):
        with Client(self.addr, timeout=30) as c:
            for i in range(4):
                c.put(f"big-{i}", content(f"big-{i}", 16 * MIB))
            assert c.exist("big-3")
        attackers = [
            ("stalled PUT", self.stalled_put, 3), ("trickled PUT", self.trickled_put, 2),
            ("unread GET", self.unread_get, 2), ("unread LIST", self.unread_list, 2),
            ("duplicate PUT", self.duplicate_puts, 1), ("cut PUT", self.cut_put, 1),
            ("connection flood", self.connection_flood, 1), ("bad frames", self.bad_frames, 2),
            ("slow metrics", self.slow_metrics, 1), ("idle connection", self.idle, 2),
        ]
        threads = [threading.Thread(target=self.good, args=(t,), daemon=True) for t in range(2)]
        for name, fn, copies in attackers:
            threads += [self.loop(name, fn) for _ in range(copies)]
        start = time.monotonic()
        for t in threads:
            t.start()
        scrapes = 0
        while time.monotonic() - start < self.seconds and not self.stop.is_set():
            time.sleep(1)
            try:
                self.metrics()
                scrapes += 1
            except OSError as e:
                self.fail(f"a metrics scrape failed: {e!r}")
            if self.proc.poll() is not None:
                self.fail(f"cxlkv serve exited with {self.proc.returncode}")
        self.stop.set()
        for t in threads:
            t.join(timeout=15)
        text = self.metrics() if self.proc.poll() is None else ""
        elapsed = time.monotonic() - start

        def metric(name):
            m = re.search("^" + re.escape(name) + r" (\d+)", text, re.M)
            return int(m.group(1)) if m else 0
        cut = {r: metric(f'cxlkv_connections_closed_total{{reason="{r}"}}')
               for r in ("bad_input", "timeout", "idle", "replaced")}
        refused = metric("cxlkv_connections_refused_total")
        lat = sorted(self.latencies) or [0]
        print(f"soak: {elapsed:.0f} s, {scrapes} scrapes; good rounds {len(self.latencies)}, "
              f"p50 {lat[len(lat) // 2] * 1e3:.1f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.1f} ms")
        for k in sorted(self.counts):
            print(f"  {k}: {self.counts[k]}")
        puts_over = metric('cxlkv_put_total{result="over_budget"}')
        gets_over = metric('cxlkv_get_total{result="over_budget"}')
        print(f"  server closed: {cut}, refused {refused}, puts over budget {puts_over}, "
              f"gets over budget {gets_over}, log lines dropped "
              f"{metric('cxlkv_log_lines_dropped_total')}, metrics clients cut "
              f"{metric('cxlkv_metrics_clients_dropped_total')}")
        if self.counts.get("good GET verified", 0) < 50:
            self.failures.append("the good clients verified fewer than 50 GETs")
        for reason in ("bad_input", "timeout", "idle"):
            if cut[reason] == 0:
                self.failures.append(f"no connection was closed for {reason}")
        if refused == 0 and cut["replaced"] == 0:
            self.failures.append("the connection flood never met the connection limit")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed after 15 s"
        if rc != 0:
            self.failures.append(f"cxlkv serve exited with {rc} on SIGTERM")
        for f in self.failures:
            print("soak: FAIL:", f)
        return 0 if not self.failures else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cxlkv", default=os.environ.get("CXLKV_BIN", "build/dev/cxlkv"))
    p.add_argument("--seconds", type=float, default=30)
    a = p.parse_args()
    sys.exit(Soak(a.cxlkv, a.seconds).run())


if __name__ == "__main__":
    main()
