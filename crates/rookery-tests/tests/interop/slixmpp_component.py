"""A slixmpp external component (XEP-0114) that echoes chat messages to their sender.

Usage: slixmpp_component.py HOST PORT NAME SECRET
Prints READY once the server accepted the handshake, echoes every chat message, and
after echoing "quit" closes its stream and prints OK. Exits non-zero on a timeout.
"""
import asyncio
import sys

from slixmpp.componentxmpp import ComponentXMPP

HOST, PORT, NAME, SECRET = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
TIMEOUT = 15


class Echo(ComponentXMPP):
    def __init__(self):
        super().__init__(NAME, SECRET, HOST, PORT)
        self.done = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    def on_start(self, _):
        print("READY", flush=True)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        print(f"echoing {msg['body']!r} to {msg['from']}", flush=True)
        msg.reply(msg["body"]).send()
        if msg["body"] == "quit":
            self.done.set()


async def main():
    echo = Echo()
    echo.connect()
    try:
        await asyncio.wait_for(echo.done.wait(), TIMEOUT)
    except asyncio.TimeoutError:
        raise SystemExit("no 'quit' message arrived")
    await asyncio.wait_for(echo.disconnect(), 5)
    print("OK", flush=True)


asyncio.run(main())
