#!/usr/bin/python3
"""bench/sip.py: SIP MESSAGE transactions per second between two registered users, baton side
by side with Kamailio (Debian's package, registrar + auth_db + msilo, bench/sip/kamailio.cfg),
driven by sipp over UDP on loopback (issue 9).

Each message is what a phone does: MESSAGE, 407 challenge, MESSAGE with digest credentials,
relayed to the recipient's registered contact (a sipp answering 200), 200 back. The offered
rate goes up step by step; a step is good when every message got its 200. Prints one JSON line
per step and per server, then the best good rate of each and their ratio.

usage: bench/sip.py [--seconds S] [--rates R1,R2,...]   (needs `make`, sipp, kamailio)
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BATON_BUILD", os.path.join(ROOT, "build"))
HERE = os.path.join(ROOT, "bench", "sip")
SENDER, RECIPIENT = ("alice", "alice-pw"), ("bob", "bob-pw")


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def users_csv(tmp):
    path = os.path.join(tmp, "users.csv")
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        # field0 user; field1 domain; field2 unused; field3 peer; field4 password
        f.write("%s;localhost;;%s;%s\n" % (SENDER[0], RECIPIENT[0], SENDER[1]))
    rpath = os.path.join(tmp, "recipient.csv")
    with open(rpath, "w") as f:
        f.write("SEQUENTIAL\n%s;localhost;;%s;%s\n" % (RECIPIENT[0], SENDER[0], RECIPIENT[1]))
    return path, rpath


def start_baton(tmp, port):
    data = os.path.join(tmp, "baton")
    for user, pw in (SENDER, RECIPIENT):
        subprocess.run([os.path.join(BUILD, "batonctl"), "--data", data, "user", "add",
                        "%s@localhost" % user, pw], check=True, stdout=subprocess.DEVNULL)
    log = open(os.path.join(tmp, "baton.log"), "w")
    return subprocess.Popen(
        [os.path.join(BUILD, "batond"), "--data", data, "--c2s", "127.0.0.1:%d" % free_port(socket.SOCK_STREAM),
         "--c2s-tls", "", "--http", "", "--sip", "127.0.0.1:%d" % port,
         "--set", "server.log_level=warn",
         # sipp answers only the first challenge and only MD5 (Kamailio offers just MD5 too)
         "--set", "sip.digest=MD5"], stdout=log, stderr=log)


def start_kamailio(tmp, port):
    db = os.path.join(tmp, "kamailio.db")
    con = sqlite3.connect(db)
    for f in ("standard-create.sql", "auth_db-create.sql", "usrloc-create.sql",
              "msilo-create.sql"):
        with open("/usr/share/kamailio/db_sqlite/" + f) as fh:
            con.executescript(fh.read())
    for user, pw in (SENDER, RECIPIENT):
        con.execute("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                    (user, "localhost", pw))
    con.commit()
    con.close()
    with open(os.path.join(HERE, "kamailio.cfg")) as f:
        cfg = f.read().replace("@PORT@", str(port)).replace("@DB@", db)
    path = os.path.join(tmp, "kamailio.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    log = open(os.path.join(tmp, "kamailio.log"), "w")
    return subprocess.Popen(["/usr/sbin/kamailio", "-f", path, "-DD", "-E", "-m", "256",
                             "-P", os.path.join(tmp, "kamailio.pid"), "-Y", tmp],
                            stdout=log, stderr=log)


def sipp(tmp, args, timeout):
    out = subprocess.run(["sipp"] + args, cwd=tmp, capture_output=True, text=True,
                         timeout=timeout)
    return out


def wait_udp(port, timeout=10):
    """Waits until something answers an OPTIONS on port (any response will do)."""
    deadline = time.monotonic() + timeout
    msg = ("OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKw;rport\r\n"
           "From: <sip:w@localhost>;tag=1\r\nTo: <sip:localhost>\r\nCall-ID: w\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(msg, ("127.0.0.1", port))
            try:
                s.recv(4096)
                return
            except OSError:
                time.sleep(0.1)
    raise SystemExit("nothing answers SIP on port %d" % port)


def run_server(name, tmp, rates, seconds):
    port = free_port()
    proc = start_baton(tmp, port) if name == "baton" else start_kamailio(tmp, port)
    uas = None
    results = []
    try:
        try:
            wait_udp(port)
        except SystemExit:
            with open(os.path.join(tmp, "%s.log" % name)) as f:
                print(f.read()[-3000:], file=sys.stderr)
            raise
        ucsv, rcsv = users_csv(tmp)
        rport = free_port()
        target = "127.0.0.1:%d" % port
        reg = sipp(tmp, [target, "-sf", os.path.join(HERE, "register.xml"), "-inf", rcsv, "-m",
                         "1", "-p", str(rport), "-i", "127.0.0.1", "-nostdin", "-nd", "-au",
                         RECIPIENT[0], "-ap", RECIPIENT[1]], 30)
        if reg.returncode != 0:
            raise SystemExit("%s: the recipient could not register:\n%s" % (name, reg.stdout[-2000:]))
        uas = subprocess.Popen(["sipp", "-sf", os.path.join(HERE, "uas.xml"), "-p", str(rport),
                                "-i", "127.0.0.1", "-nostdin", "-nd"], cwd=tmp,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        for rate in rates:
            n = rate * seconds
            t0 = time.monotonic()
            out = sipp(tmp, [target, "-sf", os.path.join(HERE, "message.xml"), "-inf", ucsv,
                             "-r", str(rate), "-m", str(n), "-l", str(max(rate, 100) * 4),
                             "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-nd",
                             "-au", SENDER[0], "-ap", SENDER[1],
                             "-timeout", str(seconds * 4 + 20), "-timeout_error"],
                       seconds * 4 + 60)
            took = time.monotonic() - t0
            ok = failed = 0
            for line in out.stdout.splitlines():
                if "Successful call" in line:
                    ok = int(line.split("|")[-1].strip())
                if "Failed call" in line:
                    failed = int(line.split("|")[-1].strip())
            row = {"scenario": "sip-message", "server": name, "offered": rate, "messages": n,
                   "ok": ok, "failed": failed, "seconds": round(took, 2),
                   "rate": round(ok / took, 1)}
            print(json.dumps(row), flush=True)
            results.append(row)
            if failed or ok < n:
                break
    finally:
        if uas:
            uas.terminate()
            uas.wait(timeout=10)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    good = [r["offered"] for r in results if r["failed"] == 0 and r["ok"] == r["messages"]]
    return max(good) if good else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rates", default="250,500,1000,2000,4000,8000")
    a = ap.parse_args()
    if not shutil.which("sipp") or not os.path.exists("/usr/sbin/kamailio"):
        raise SystemExit("bench/sip.py needs sipp and kamailio (scripts/deps.sh bench)")
    rates = [int(r) for r in a.rates.split(",")]
    best = {}
    for name in ("baton", "kamailio"):
        tmp = tempfile.mkdtemp(prefix="baton-bench-sip-%s-" % name)
        try:
            best[name] = run_server(name, tmp, rates, a.seconds)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"scenario": "sip-message-best", "baton": best["baton"],
                      "kamailio": best["kamailio"],
                      "ratio": round(best["baton"] / best["kamailio"], 2)
                      if best["kamailio"] else None}))


if __name__ == "__main__":
    main()
