"""A loopback TCP proxy the tests stand between `tessera serve` and PostgreSQL: killing it is, for the
servers behind it, the database going away (every connection reset, new ones refused); starting it again on
the same port is the database coming back. Nothing else on the machine notices. Given several targets it is a
load balancer: each new connection goes to the next target in turn.

argv: LISTEN_PORT TARGET_PORT [TARGET_PORT ...]   Prints "ready" once listening.
"""
import asyncio
import itertools
import sys

listen_port, targets = int(sys.argv[1]), itertools.cycle([int(port) for port in sys.argv[2:]])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", next(targets))
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
