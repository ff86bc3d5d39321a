"""A real SMTP server (aiosmtpd) for the email tests, on a free loopback port.

smtp_server.py DIR [--reject ADDR=CODE TEXT]... [--tempfail-once ADDR]...
               [--starttls CERT KEY] [--auth USER:PASSWORD]
smtp_server.py DIR --blackhole

Writes its port to DIR/port once it listens; each message it accepts goes to
DIR/N.json ({"from", "to", "data"}), and each EHLO/HELO (one per session) is
a line of DIR/sessions.  --reject answers RCPT TO for ADDR with CODE TEXT
every time, --tempfail-once answers 451 the first time only.  Without
--starttls the server does not offer STARTTLS; with --auth it requires AUTH
(over TLS when it offers STARTTLS).  Each message records "tls" and "auth".

--blackhole: no SMTP at all, but a port whose connections never complete: a
socket that listens with a backlog of 0, whose one place is taken by a
connection of its own and never accepted, so that the kernel drops every
further SYN (the client retries its SYN for minutes, as against a host that
drops packets).  It writes DIR/port once a trial connection has timed out,
or DIR/failed with the reason when the kernel answered it after all.
"""
import json
import os
import signal
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def blackhole(out):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = socket.create_connection(("127.0.0.1", port), timeout=5)
    trial = socket.socket()
    trial.settimeout(1)
    try:
        trial.connect(("127.0.0.1", port))
        result, text = "failed", "a connection beyond the backlog was answered"
    except socket.timeout:
        result, text = "port", str(port)
    except OSError as e:
        result, text = "failed", "a connection beyond the backlog: " + str(e)
    trial.close()
    with open(os.path.join(out, result + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(out, result + ".tmp"), os.path.join(out, result))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    held.close()
    listener.close()


def main():
    args = sys.argv[1:]
    out = args.pop(0)
    if args == ["--blackhole"]:
        return blackhole(out)
    reject, tempfail, tls, auth = {}, set(), None, None
    while args:
        a = args.pop(0)
        if a == "--reject":
            addr, reply = args.pop(0).split("=", 1)
            reject[addr] = reply
        elif a == "--tempfail-once":
            tempfail.add(args.pop(0))
        elif a == "--auth":
            auth = args.pop(0).split(":", 1)
        elif a == "--starttls":
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(args.pop(0), args.pop(0))
        else:
            sys.exit("unknown argument " + a)
    lock = threading.Lock()
    count = [0]

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            with open(os.path.join(out, "sessions"), "a") as f:
                f.write(hostname + "\n")
            session.host_name = hostname
            return responses

        async def handle_HELO(self, server, session, envelope, hostname):
            with open(os.path.join(out, "sessions"), "a") as f:
                f.write(hostname + "\n")
            session.host_name = hostname
            return "250 " + server.hostname

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in reject:
                return reject[address]
            if address in tempfail:
                tempfail.discard(address)
                return "451 4.3.0 try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            with lock:
                count[0] += 1
                n = count[0]
            path = os.path.join(out, "%d.json" % n)
            with open(path + ".tmp", "w") as f:
                json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                           "tls": session.ssl is not None,
                           "auth": session.auth_data.login.decode() if session.authenticated else None,
                           "data": envelope.original_content.decode("utf-8", "replace")}, f)
            os.rename(path + ".tmp", path)
            return "250 OK queued as %d" % n

    def authenticator(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and [data.login.decode(), data.password.decode()] == auth
        # handled=False: aiosmtpd answers a failure itself (535)
        return AuthResult(success=ok, handled=False, auth_data=data)

    class Ctl(Controller):
        def factory(self):
            extra = {}
            if auth:
                extra = dict(authenticator=authenticator, auth_required=True,
                             auth_require_tls=tls is not None)
            return SMTP(self.handler, tls_context=tls, require_starttls=tls is not None,
                        hostname="kpool-test", ident="kpool test SMTP",
                        decode_data=False, enable_SMTPUTF8=False, **extra)

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ctl = Ctl(Handler(), hostname="127.0.0.1", port=port, ready_timeout=10)
    ctl.start()
    with open(os.path.join(out, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    ctl.stop()


if __name__ == "__main__":
    main()
