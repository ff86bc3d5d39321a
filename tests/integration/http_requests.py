#!/usr/bin/env python3
"""http_requests.py FILE - the requests webhook-receiver recorded (requests.jsonl),
one tab-separated line each, in the order they arrived:

PATH IDEMPOTENCY_KEY SIGNATURE CONN START END CODE ATTEMPT AUTHORIZATION X_TEST CONTENT_TYPE BODY
"""
import json
import sys

try:
    f = open(sys.argv[1])
except FileNotFoundError:
    sys.exit(0)
for line in f:
    r = json.loads(line)
    h = r["headers"]
    print("\t".join(str(x) for x in [
        r["path"], h.get("idempotency-key", "-"), r.get("signature", "-"), r["conn"],
        "%.3f" % r["t"], "%.3f" % r["t_end"], r["code"], h.get("kpool-attempt", "-"),
        h.get("authorization", "-"), h.get("x-test", "-"), h.get("content-type", "-"),
        r["body"].replace("\t", " ").replace("\n", " ")]))
