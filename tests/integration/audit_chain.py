#!/usr/bin/env python3
"""audit_chain.py DB README - checks the audit handler's hash chain in DB
with nothing of kpool's code: the row's layout is read from the README's
`audit` section (the fields named in the sentence that says what `hash` is
SHA-256 of, in the order they are first named there; those named before
"as 8-byte" are big-endian integers, the others texts as a 4-byte big-endian
length and their bytes, NULL as length 0xffffffff), so that a README that
describes another layout than the code's fails here.

Prints what `kpool audit verify` prints: "ok N entries", or "bad seq N: WHY
(K entries before it hold)" and exits 1; exits 2 if the README says no
layout or DB cannot be read.
"""
import hashlib
import re
import sqlite3
import struct
import sys

COLUMNS = ["seq", "event_id", "at", "user_id", "action", "resource", "details", "job"]


def fail(msg):
    sys.stderr.write("audit_chain: %s\n" % msg)
    sys.exit(2)


def layout(readme):
    """The fields in the order the README names them, and which are integers."""
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^### `audit`.*?(?=^### )", text, re.S | re.M)
    if not m:
        fail("no ### `audit` section in " + readme)
    section = " ".join(m.group(0).split())
    m = re.search(r"`hash` is SHA-256 of `prev_hash` followed by (.*?)the first entry", section)
    if not m:
        fail("the audit section does not say what `hash` is")
    sentence = m.group(1)
    order = []
    for name in re.findall(r"`(\w+)`", sentence):
        if name in COLUMNS and name not in order:
            order.append(name)
    ints = set()
    for group in re.findall(r"((?:`\w+`(?:,? and |, )?)+) as 8-byte", sentence):
        ints.update(re.findall(r"`(\w+)`", group))
    if sorted(order) != sorted(COLUMNS) or not ints:
        fail("the README names %s (integers %s), not every column" % (order, sorted(ints)))
    return order, ints


def encode(order, ints, row):
    out = b""
    for name in order:
        v = row[name]
        if name in ints:
            out += struct.pack(">q", v)
        elif v is None:
            out += b"\xff\xff\xff\xff"
        else:
            out += struct.pack(">I", len(v)) + v
    return out


def main():
    if len(sys.argv) != 3:
        fail("usage: audit_chain.py DB README")
    order, ints = layout(sys.argv[2])
    try:
        db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
        db.text_factory = bytes
        rows = db.execute("SELECT %s, prev_hash, hash FROM audit_log ORDER BY seq" %
                          ", ".join(COLUMNS)).fetchall()
    except sqlite3.Error as e:
        fail("%s: %s" % (sys.argv[1], e))
    prev, n = bytes(32), 0
    for r in rows:
        row = dict(zip(COLUMNS, r[:len(COLUMNS)]))
        prev_hash, h = r[len(COLUMNS)], r[len(COLUMNS) + 1]
        if prev_hash != prev:
            print("bad seq %d: prev_hash is not the hash of the entry before it%s "
                  "(%d entries before it hold)" %
                  (row["seq"], " (the first entry's is 32 zero bytes)" if n == 0 else "", n))
            return 1
        want = hashlib.sha256(prev + encode(order, ints, row)).digest()
        if h != want:
            print("bad seq %d: its hash does not match its contents (%d entries before it hold)"
                  % (row["seq"], n))
            return 1
        prev, n = want, n + 1
    print("ok %d entries" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
