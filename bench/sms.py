#!/usr/bin/python3
"""bench/sms.py: MT throughput through batond -> baton-smsbuf -> a stop-and-wait SMPP SMSC, with
and without latency on the link (seed 001 R4). The SMSC double answers each submit after
--smsc-delay ms, so the SMSC side paces everything; a link that waited for each acknowledgement
would give 1000 / RTT messages per second instead.

Prints one JSON line per run ({"scenario": "sms-mt", "rtt_ms": ..., "rate": ...}) and a last line
with the ratio of the delayed rate to the undelayed one (the target is at least 0.70).

usage: bench/sms.py [--messages N] [--smsc-delay MS] [--rtt MS]   (needs `make`, tests/sms/node_modules)
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BATON_BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import helpers  # noqa: E402  (the tests' raw XMPP client)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d did not open" % port)


def http(port, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def run(tmp, n, smsc_delay, rtt):
    procs = []
    ports = {k: free_port() for k in ("c2s", "link", "proxy", "pctl", "smsc", "sctl")}
    log = open(os.path.join(tmp, "log-%d.txt" % rtt), "w")
    try:
        procs.append(subprocess.Popen(
            ["node", os.path.join(ROOT, "tests/sms/smsc-smpp.mjs"), "--port", str(ports["smsc"]),
             "--control", str(ports["sctl"]), "--system-id", "u", "--password", "p"],
            stdout=subprocess.DEVNULL, stderr=log))
        procs.append(subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "tests/sms/linkproxy.py"), "--listen",
             str(ports["proxy"]), "--to", "127.0.0.1:%d" % ports["link"], "--control",
             str(ports["pctl"])], stdout=subprocess.DEVNULL, stderr=log))
        data = os.path.join(tmp, "b%d" % rtt)
        subprocess.run([os.path.join(BUILD, "batonctl"), "--data", data, "user", "add",
                        "alice@localhost", "pw"], check=True, stdout=subprocess.DEVNULL)
        procs.append(subprocess.Popen(
            [os.path.join(BUILD, "batond"), "--data", data, "--c2s", "127.0.0.1:%d" % ports["c2s"],
             "--c2s-tls", "", "--http", "", "--allow-plaintext", "--sms-link",
             "127.0.0.1:%d" % ports["link"], "--sms-secret", "s", "--set", "limits.rate=0"],
            stdout=log, stderr=log))
        for p in ("smsc", "sctl", "pctl", "c2s"):
            wait_port(ports[p])
        http(ports["sctl"], "/config", {"submit_delay_ms": smsc_delay, "receipts": "none"})
        http(ports["pctl"], "/config", {"delay_ms": rtt // 2})
        procs.append(subprocess.Popen(
            [os.path.join(BUILD, "baton-smsbuf"), "--smsc", "127.0.0.1:%d" % ports["smsc"],
             "--smsc-user", "u", "--smsc-password", "p", "--link", "127.0.0.1:%d" % ports["proxy"],
             "--link-secret", "s", "--link-plaintext", "--data", os.path.join(tmp, "s%d" % rtt)],
            stdout=log, stderr=log))

        class Srv:
            c2s_port = tls_port = ports["c2s"]
            domain = "localhost"
        c = helpers.Client(Srv(), "alice@localhost", "pw", mode="plain").connect()
        deadline = time.monotonic() + 20
        while not http(ports["sctl"], "/state")["bound"] and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        for i in range(n):
            c.send("<message to='+4670%07d@sms.localhost' type='chat'><body>m%d</body></message>"
                   % (i % 50, i))
        done = 0
        deadline = time.monotonic() + 60 + n * (smsc_delay + rtt) / 1000
        while done < n and time.monotonic() < deadline:
            time.sleep(0.1)
            done = len(http(ports["sctl"], "/state")["submits"])
        elapsed = time.monotonic() - t0
        st = http(ports["sctl"], "/state")
        c.close()
        return {"scenario": "sms-mt", "server": "baton", "messages": n, "delivered": done,
                "rtt_ms": rtt, "smsc_delay_ms": smsc_delay, "seconds": round(elapsed, 2),
                "rate": round(done / elapsed, 1), "smsc_violations": st["violations"]}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--smsc-delay", type=int, default=5)
    ap.add_argument("--rtt", type=int, default=200)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="baton-bench-sms-")
    try:
        base = run(tmp, a.messages, a.smsc_delay, 0)
        print(json.dumps(base), flush=True)
        slow = run(tmp, a.messages, a.smsc_delay, a.rtt)
        print(json.dumps(slow), flush=True)
        ratio = slow["rate"] / base["rate"] if base["rate"] else 0
        print(json.dumps({"scenario": "sms-mt-ratio", "rtt_ms": a.rtt, "ratio": round(ratio, 2),
                          "target": 0.7, "met": ratio >= 0.7 and slow["delivered"] == a.messages,
                          "stop_and_wait_rate": round(1000 / a.rtt, 1)}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
