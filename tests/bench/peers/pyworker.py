"""pyworker.py - scripts/bench's Python peer: a worker with kpool's guarantee.

confluent-kafka and SQLite, the way one writes it by hand: per job, parse the
JSON, take its event id, skip it if the processed table has it, else handle
it (a no-op) and insert the id; one SQLite transaction per batch taken from
the consumer, the batch's offsets stored (enable.auto.offset.store=false) only
once that transaction committed, and committed from there every 200 ms.  The
consumer has kpool's settings (prefetch bound, fetch wait, commit interval).

It writes what tests/bench/stamp.c writes (see there) to OUT, at every 1000th
job, at each latency sample ("lat-" event ids) and when stopped (SIGTERM).

usage: /usr/bin/python3 pyworker.py BOOTSTRAP GROUP OUT DB TOPIC...
"""
import json
import os
import signal
import sqlite3
import sys
import time

from confluent_kafka import Consumer, TopicPartition

bootstrap, group, out, dbpath = sys.argv[1:5]
topics = sys.argv[5:]
count = first = last = 0
lat = []
stopping = False


def write():
    with open(out + ".tmp", "w") as f:
        f.write(f"{count} {first} {last}\n")
        f.writelines(f"{ts} {at}\n" for ts, at in lat)
    os.replace(out + ".tmp", out)


def on_term(_sig, _frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

db = sqlite3.connect(dbpath, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY, processed_at INTEGER)")

c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.offset.store": False,
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 200,
    "queued.max.messages.kbytes": 4096,
    "fetch.wait.max.ms": 100,
})
c.subscribe(topics)

while not stopping:
    m = c.poll(0.2)
    if m is None:
        continue
    # and what else is there already, without waiting for more: one batch
    batch = [m] + c.consume(255, 0)
    before, sampled, ends = count, False, {}
    db.execute("BEGIN")
    for m in batch:
        if m.error():
            continue
        ends[(m.topic(), m.partition())] = m.offset() + 1
        now = time.time_ns() // 1000000
        event_id = json.loads(m.value())["eventId"]
        if db.execute("SELECT 1 FROM processed WHERE event_id = ?", (event_id,)).fetchone():
            continue
        # the handler: a no-op that notes when it was called
        if event_id.startswith("lat-"):
            lat.append((m.timestamp()[1], now))
            sampled = True
        elif event_id.startswith("bench-"):
            count += 1
            if count == 1:
                first = now
            last = now
        db.execute("INSERT INTO processed (event_id, processed_at) VALUES (?, ?)", (event_id, now))
    db.execute("COMMIT")
    if ends:
        c.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()])
    if sampled or count // 1000 != before // 1000:
        write()

write()
c.close()
db.close()
