"""summary.py - scripts/bench's table: one consumer per row, kpool's targets.

usage: python3 summary.py DIR TITLE

DIR holds, per consumer NAME (bare, kafkajs, python, java, kpool):
  NAME.label  what it is, one line
  NAME.stamp  its handler's record, as tests/bench/stamp.c writes it:
              "COUNT FIRST_MS LAST_MS", then "TIMESTAMP_MS CALLED_MS" per latency sample
  NAME.rate   instead of NAME.stamp: jobs/s measured by the consumer itself
  NAME.rss    its peak RSS (VmHWM), KiB
  NAME.skip   why it did not run (then nothing else counts)
Standard library only.
"""
import os
import sys

ORDER = ["bare", "kafkajs", "python", "java", "kpool"]
RSS_TARGET_MIB = 32
TARGETS = {"kafkajs": 3, "python": 10}  # kpool >= this many times its jobs/s


def read(d, name, ext):
    try:
        with open(os.path.join(d, f"{name}.{ext}")) as f:
            return f.read().strip()
    except OSError:
        return None


def quantile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def load(d, name):
    r = {"label": read(d, name, "label") or name, "skip": read(d, name, "skip")}
    if r["label"] == name and r["skip"] is None and read(d, name, "stamp") is None:
        return None  # not a consumer of this run
    rate, stamp, rss = read(d, name, "rate"), read(d, name, "stamp"), read(d, name, "rss")
    r["rate"] = float(rate) if rate else None
    r["rss"] = int(rss) / 1024 if rss else None
    r["lat"] = None
    if stamp:
        lines = stamp.splitlines()
        count, first, last = (int(x) for x in lines[0].split())
        r["count"] = count
        if r["rate"] is None and count > 1:
            r["rate"] = (count - 1) / max((last - first) / 1000, 0.001)
        lat = sorted(int(b) - int(a) for a, b in (line.split() for line in lines[1:]))
        if lat:
            r["lat"] = (quantile(lat, 0.5), quantile(lat, 0.99), lat[-1], len(lat))
    return r


def main():
    d, title = sys.argv[1], sys.argv[2]
    rows = {n: r for n in ORDER if (r := load(d, n)) is not None}
    kp = rows.get("kpool")
    kp_rate = kp["rate"] if kp and not kp["skip"] else None

    print(f"\n== {title}")
    head = f"{'consumer':<46} {'jobs/s':>9} {'kpool/it':>9} {'peak RSS MiB':>13} {'latency p50/p99 ms':>19}"
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        if r["skip"]:
            print(f"{r['label']:<46} not run: {r['skip']}")
            continue
        rate = f"{r['rate']:.0f}" if r["rate"] else "-"
        ratio = f"{kp_rate / r['rate']:.2f}x" if kp_rate and r["rate"] else "-"
        rss = f"{r['rss']:.1f}" if r["rss"] is not None else "-"
        lat = f"{r['lat'][0]} / {r['lat'][1]}" if r["lat"] else "-"
        print(f"{r['label']:<46} {rate:>9} {ratio:>9} {rss:>13} {lat:>19}")
    print()
    print(f"{'kpool target':<46} {'wanted':>13} {'measured':>13}  verdict")

    def target(what, wanted, measured, ok):
        verdict = "-" if ok is None else ("met" if ok else "MISSED")
        print(f"{what:<46} {wanted:>13} {measured:>13}  {verdict}")

    for name, times in TARGETS.items():
        r = rows.get(name)
        if r is None:
            continue
        if r["skip"] or not kp_rate or not r["rate"]:
            target(f"jobs/s kpool / {name}", f">= {times}x", "n/a", None)
        else:
            x = kp_rate / r["rate"]
            target(f"jobs/s kpool / {name}", f">= {times}x", f"{x:.2f}x", x >= times)
    if "bare" in rows:
        r = rows["bare"]
        x = f"{kp_rate / r['rate']:.2f}x" if kp_rate and r["rate"] and not r["skip"] else "n/a"
        target("jobs/s kpool / bare librdkafka (reference)", "-", x, None)
    if kp and not kp["skip"] and kp["rss"] is not None:
        target("kpool worker peak RSS", f"<= {RSS_TARGET_MIB} MiB",
               f"{kp['rss']:.1f} MiB", kp["rss"] <= RSS_TARGET_MIB)
    else:
        target("kpool worker peak RSS", f"<= {RSS_TARGET_MIB} MiB", "n/a", None)
    js = rows.get("kafkajs")
    if kp and kp["lat"] and js and not js["skip"] and js["lat"]:
        target("latency p50 / p99 (ms) vs kafkajs", f"<= {js['lat'][0]} / {js['lat'][1]}",
               f"{kp['lat'][0]} / {kp['lat'][1]}",
               kp["lat"][0] <= js["lat"][0] and kp["lat"][1] <= js["lat"][1])
    else:
        target("latency p50 / p99 (ms) vs kafkajs", "<= kafkajs's", "n/a", None)
    samples = [f"{n} {r['lat'][3]}" for n, r in rows.items() if r["lat"]]
    if samples:
        print(f"\nlatency samples per consumer: {', '.join(samples)}")


if __name__ == "__main__":
    main()
