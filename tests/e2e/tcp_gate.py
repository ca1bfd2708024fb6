#!/usr/bin/env python3
"""A TCP relay that takes its downstream away without breaking a transaction in flight.

    tcp_gate.py LISTEN_PORT TARGET_PORT FLAG_FILE

Relays 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT. While FLAG_FILE exists the downstream
looks down: new connections are closed at once, and an open connection is closed as soon as
the server has answered the last thing the client sent (so no reply is ever lost in the cut:
a message is either acknowledged before the cut or not queued at all).

The fault test uses it because removing the re-injection service from master.cf makes Postfix
kill its smtpd processes mid-transaction, and a message queued by a killed smtpd is delivered
twice whatever the filter in front of it does.
"""
import asyncio
import os
import sys

conns = set()


class Conn:
    def __init__(self, client_w, up_w):
        self.client_w, self.up_w = client_w, up_w
        self.server_spoke_last = True  # an SMTP server speaks first

    def close(self):
        for w in (self.client_w, self.up_w):
            try:
                w.close()
            except OSError:
                pass


async def pipe(conn, reader, writer, from_server):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            conn.server_spoke_last = from_server
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


async def main():
    listen_port, target_port, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    async def handle(client_r, client_w):
        if os.path.exists(flag):
            client_w.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        conn = Conn(client_w, up_w)
        conns.add(conn)
        try:
            await asyncio.gather(pipe(conn, client_r, up_w, False), pipe(conn, up_r, client_w, True))
        finally:
            conns.discard(conn)

    async def cutter():
        while True:
            await asyncio.sleep(0.05)
            if os.path.exists(flag):
                for c in list(conns):
                    if c.server_spoke_last:
                        c.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    asyncio.ensure_future(cutter())
    async with server:
        await server.serve_forever()


asyncio.run(main())
