#!/usr/bin/python3
"""bench/table.py: reads the JSON lines of bench/run.sh (files or stdin) and prints one table:
each metric for baton, Prosody and ejabberd, and baton's ratio to the better of the other two;
where `bench/run.sh null` ran, a last column gives the null relay's figure: the most any server
could reach on this machine with this generator, and baton's share of it.

Invariant: a ratio is always "how many times better baton is" (higher is better for baton), so
for memory per connection it is best_other / baton; a missing figure prints as "-".
"""

import json
import sys

# (label of the run.sh scenario, JSON field, heading, higher_is_better, DESIGN.md target ratio)
METRICS = [
    ("chat", "offered", "1:1 chat msg/s, archive off (p99<50ms, 0 lost)", True, 10),
    ("chat-mam", "offered", "1:1 chat msg/s, archive on", True, 50),
    ("idle", "kib_per_conn", "KiB per idle connection", False, None),
    ("idle-tls", "kib_per_conn", "KiB per idle TLS connection", False, None),
    ("login", "logins_per_s", "logins/s (PLAIN)", True, 10),
    ("idle", "logins_per_s", "logins/s while filling idle set", True, None),
    ("offline", "flush_per_s", "offline backlog delivered/s", True, None),
    ("muc", "delivered_rate", "MUC fan-out deliveries/s (rooms of 50)", True, None),
]
SERVERS = ["baton", "prosody", "ejabberd"]


def load(files):
    res = {}
    for f in files:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            key = d.get("label") or d.get("scenario")
            if d.get("scenario") == "chat" or d.get("scenario") == "muc":
                if not d.get("good"):
                    d["offered"] = 0  # no good step: nothing met p99 < 50 ms with 0 loss
                    d["delivered_rate"] = 0
            res[(d.get("server"), key)] = d
    return res


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return "{:,.0f}".format(v)
    return "{:.1f}".format(v)


def main():
    files = [open(p) for p in sys.argv[1:]] or [sys.stdin]
    res = load(files)
    ceiling = any(k[0] == "null" for k in res)
    head = ["metric"] + SERVERS + ["baton vs best", "target"]
    if ceiling:
        head += ["ceiling (null relay)"]
    rows = []
    for label, field, title, higher, target in METRICS:
        vals = [res.get((s, label), {}).get(field) for s in SERVERS]
        if all(v is None for v in vals):
            continue
        others = [v for v in vals[1:] if v is not None]
        ratio = None
        if vals[0] is not None and others:
            best = max(others) if higher else min(others)
            if higher:
                ratio = vals[0] / best if best else None
            else:
                ratio = best / vals[0] if vals[0] else None
        tgt = ""
        if target:
            tgt = ">= %dx" % target
        elif label.startswith("idle") and field == "kib_per_conn":
            tgt = "<= %d KiB" % (16 if label == "idle-tls" else 8)
        cells = [title] + [fmt(v) for v in vals] + [
            "-" if ratio is None else "%.2fx" % ratio, tgt]
        if ceiling:
            # The archive is the server's own work: the same traffic has the same ceiling.
            top = res.get(("null", "chat" if label == "chat-mam" else label), {}).get(field)
            share = ""
            if top and vals[0] is not None:
                share = " (baton %.0f %%)" % (100.0 * vals[0] / top)
            cells.append("" if top is None else fmt(top) + share)
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
