#!/usr/bin/env python3
"""The MLLP peer of `lianyi-bench mllp`: python-hl7's asyncio MLLP server that only
parses each message and answers AA (no storage), to show on the same machine and with
the same senders what the protocol alone costs.

Usage: mllp_peer.py PORT_FILE   (writes the port it listens on to PORT_FILE)
"""
import asyncio
import sys

from hl7.mllp import start_hl7_server


async def process(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main(port_file):
    server = await start_hl7_server(process, host="127.0.0.1", port=0, encoding="utf-8")
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w", encoding="ascii") as f:
        f.write(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
