#!/usr/bin/env python3
"""tcpfwd.py LISTEN_PORT TARGET_HOST:PORT - forwards TCP connections on loopback.

Lets a test start with nothing listening on a port, then make a broker
appear there.  Stops on SIGTERM.
"""
import asyncio
import signal
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(port, target):
    host, tport = target.rsplit(":", 1)

    async def handle(r, w):
        try:
            tr, tw = await asyncio.open_connection(host, int(tport))
        except OSError:
            w.close()
            return
        await asyncio.gather(pipe(r, tw), pipe(tr, w))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
