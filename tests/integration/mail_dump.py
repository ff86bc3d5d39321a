"""mail_dump.py DIR: one tab-separated line per message the test SMTP server
(smtp_server.py) or the file:// transport (*.eml) received:

ENVELOPE_TO SUBJECT CONTENT_TYPES MESSAGE_ID HEADER_NAMES TEXT_BODY|HTML_BODY RAW_SUBJECT
TO_ADDRESSES LONGEST_HEADER_LINE

ENVELOPE_TO, CONTENT_TYPES and TO_ADDRESSES (the addresses of the To header
as a reader parses it) comma separated; bodies with newlines as \\n;
LONGEST_HEADER_LINE the length of the longest line of the message's headers,
without its CRLF.
"""
import email
import email.policy
import glob
import json
import os
import sys

d = sys.argv[1]
items = []
for path in sorted(glob.glob(os.path.join(d, "*.json"))):
    rec = json.load(open(path))
    items.append((rec["to"], rec["data"]))
for path in sorted(glob.glob(os.path.join(d, "*.eml"))):
    raw = open(path, encoding="utf-8", newline="").read()  # CRLF kept
    env = [l.split(": ", 1)[1].strip() for l in raw.splitlines() if l.startswith("X-Kpool-Envelope-To: ")]
    items.append((env, raw))
for to, raw in items:
    m = email.message_from_string(raw, policy=email.policy.default)
    raw_subject = ""
    for line in raw.split("\r\n"):
        if line.startswith("Subject: "):
            raw_subject = line[9:]
    types, bodies = [], []
    for p in m.walk():
        types.append(p.get_content_type())
        if not p.is_multipart():
            bodies.append(p.get_content().replace("\r\n", "\n").replace("\n", "\\n"))
    names = sorted(set(k.lower() for k in m.keys()))
    try:
        to_header = [a.addr_spec for a in m["to"].addresses] if m["to"] is not None else []
    except Exception as e:  # a header a reader cannot parse
        to_header = ["unparsable: %s" % e]
    head = raw.split("\r\n\r\n", 1)[0]
    longest = max(len(line) for line in head.split("\r\n"))
    print("\t".join([",".join(to), str(m["subject"]), ",".join(types), str(m["message-id"]),
                     ",".join(names), "|".join(bodies), raw_subject, ",".join(to_header),
                     str(longest)]))
