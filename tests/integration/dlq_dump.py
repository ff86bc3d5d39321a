#!/usr/bin/env python3
"""dlq_dump.py - reads `kcat -J` records on stdin and prints one tab-separated
line per dead-letter record:

EVENT_ID CLASS ATTEMPTS MISSING_HEADERS KEY ORIGINAL_TOPIC ORIGINAL_OFFSET_OK PAYLOAD ERROR OTHER_HEADERS
"""
import json
import sys

REQUIRED = [
    "kpool.original.topic", "kpool.original.partition", "kpool.original.offset",
    "kpool.original.timestamp", "kpool.event-id", "kpool.worker", "kpool.handler",
    "kpool.error.class", "kpool.error", "kpool.attempts", "kpool.failed-at",
    "kpool.host", "kpool.pid",
]

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    rec = json.loads(line)
    flat = rec.get("headers") or []
    h = dict(zip(flat[0::2], flat[1::2]))
    missing = [k for k in REQUIRED if k not in h] or ["none"]
    other = sorted(f"{k}={v}" for k, v in h.items() if not k.startswith("kpool."))
    offset_ok = h.get("kpool.original.offset", "").isdigit() and h.get(
        "kpool.original.partition", "").isdigit()
    fields = [
        h.get("kpool.event-id", "?"), h.get("kpool.error.class", "?"),
        h.get("kpool.attempts", "?"), ",".join(missing), rec.get("key") or "",
        h.get("kpool.original.topic", "?"), "yes" if offset_ok else "no",
        (rec.get("payload") or "").replace("\t", " "), h.get("kpool.error", "?"),
        ",".join(other) or "-",
    ]
    print("\t".join(fields))
