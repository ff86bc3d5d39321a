#!/usr/bin/env python3
"""tcpfwd.py LISTEN_PORT TARGET_HOST:PORT [--hold-api KEY | --refuse-topics ERR]
             [--held FILE] [--lock F --ready F]

Forwards TCP connections on loopback.  Lets a test start with nothing
listening on a port, then make a broker appear there.

With --hold-api, the client's side is read as Kafka requests (a 4-byte
size, then the request, whose header starts with its int16 API key), and
every request with that API key is held: never forwarded, never answered,
as a broker that does not answer it.  Each one held appends a line to
FILE.

With --refuse-topics, every CreateTopics request (versions 0 to 4) is
answered by tcpfwd itself, each of its topics with Kafka error code ERR
(29: topic authorization failed), as a broker whose ACLs forbid it; each
one refused appends a line to FILE.

With --lock, it first waits for an exclusive lock on that file (held until
it ends), for tests that share one port; with --ready, it creates that file
once it listens.  Stops on SIGTERM.
"""
import argparse
import asyncio
import contextlib
import fcntl
import signal
import struct


async def pipe(reader, writer, lock=None):
    """Copies reader to writer; with lock, Kafka responses whole, each under
    the lock, so that answers tcpfwd makes itself can go between them."""
    try:
        while True:
            if lock is None:
                data = await reader.read(65536)
                if not data:
                    break
            else:
                size, body = await frame(reader)
                data = size + body
            async with lock or contextlib.nullcontext():
                writer.write(data)
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def frame(reader):
    """One Kafka request or response: its 4-byte size, and the rest."""
    size = await reader.readexactly(4)
    return size, await reader.readexactly(struct.unpack(">i", size)[0])


CREATE_TOPICS = 19


def create_topics_refusal(body, err):
    """The response to a CreateTopics request (v0-v4) refusing its topics with err."""
    api_key, version, corr = struct.unpack(">hhi", body[:8])
    (n,) = struct.unpack(">h", body[8:10])
    p = 10 + max(n, 0)  # past the client id
    (count,) = struct.unpack(">i", body[p:p + 4])
    p += 4
    names = []
    for _ in range(count):
        (n,) = struct.unpack(">h", body[p:p + 2])
        names.append(body[p + 2:p + 2 + n])
        p += 2 + n + 4 + 2  # name, partitions, replication factor
        (k,) = struct.unpack(">i", body[p:p + 4])
        p += 4
        for _ in range(max(k, 0)):  # assignments: partition, broker ids
            (b,) = struct.unpack(">i", body[p + 4:p + 8])
            p += 8 + 4 * max(b, 0)
        (k,) = struct.unpack(">i", body[p:p + 4])
        p += 4
        for _ in range(max(k, 0)):  # configs: name, nullable value
            (c,) = struct.unpack(">h", body[p:p + 2])
            p += 2 + c
            (c,) = struct.unpack(">h", body[p:p + 2])
            p += 2 + max(c, 0)
    out = struct.pack(">i", corr)
    if version >= 2:
        out += struct.pack(">i", 0)  # throttle time
    out += struct.pack(">i", len(names))
    for name in names:
        out += struct.pack(">h", len(name)) + name + struct.pack(">h", err)
        if version >= 1:
            out += struct.pack(">h", -1)  # no message
    return struct.pack(">i", len(out)) + out


async def requests(reader, writer, held, hold=None, refuse=None, client=None, lock=None):
    """Forwards Kafka requests one by one: those with API key hold are held;
    with refuse, CreateTopics (v0-v4) is answered here, to client."""
    try:
        while True:
            size, body = await frame(reader)
            api_key, version, corr = struct.unpack(">hhi", body[:8])
            refused = refuse is not None and api_key == CREATE_TOPICS and version <= 4
            if api_key == hold or refused:
                with open(held, "a") as f:
                    f.write(f"api_key={api_key} version={version} correlation_id={corr}"
                            + (f" refused={refuse}" if refused else "") + "\n")
            if refused:
                async with lock:  # whole responses only, between the broker's
                    client.write(create_topics_refusal(body, refuse))
                    await client.drain()
            if api_key == hold or refused:
                continue
            writer.write(size + body)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(args):
    host, tport = args.target.rsplit(":", 1)

    async def handle(r, w):
        try:
            tr, tw = await asyncio.open_connection(host, int(tport))
        except OSError:
            w.close()
            return
        if args.refuse_topics is not None:
            lock = asyncio.Lock()
            await asyncio.gather(requests(r, tw, args.held, refuse=args.refuse_topics,
                                          client=w, lock=lock),
                                 pipe(tr, w, lock))
            return
        up = pipe(r, tw) if args.hold_api is None else requests(r, tw, args.held, hold=args.hold_api)
        await asyncio.gather(up, pipe(tr, w))

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    if args.ready:
        open(args.ready, "w").close()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("target")
    ap.add_argument("--hold-api", type=int)
    ap.add_argument("--refuse-topics", type=int)
    ap.add_argument("--held", default="/dev/null")
    ap.add_argument("--lock")
    ap.add_argument("--ready")
    args = ap.parse_args()
    if args.lock:
        lock = open(args.lock, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends
    asyncio.run(main(args))
