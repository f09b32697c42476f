"""Two slixmpp clients log in over STARTTLS, subscribe, chat and check offline delivery.

Usage: slixmpp_chat.py HOST PORT CA_PEM
Exits 0 when every step worked; prints what failed otherwise.
"""
import asyncio
import ssl
import sys

import slixmpp

HOST, PORT, CA = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TIMEOUT = 15


class Bot(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.inbox = asyncio.Queue()
        self.online = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.ssl_context = ssl.create_default_context(cafile=CA)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        # slixmpp tries SCRAM-*-PLUS with tls-unique first, which TLS 1.3 servers cannot
        # offer; it then falls back on its own, so failures are only counted here.
        self.add_event_handler("failed_auth", self.on_failed)
        self.failures = 0
        self.add_event_handler("presence_subscribed", lambda p: self.subscribed.set())

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.online.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.inbox.put_nowait(msg["body"])

    def on_failed(self, stanza):
        self.failures += 1
        print(f"{self.boundjid.bare}: a mechanism failed: {stanza['condition']} {stanza['text']}", flush=True)


async def login(jid, password):
    bot = Bot(jid, password)
    bot.auto_authorize = True
    bot.auto_subscribe = True
    bot.connect((HOST, PORT))
    try:
        await asyncio.wait_for(bot.online.wait(), TIMEOUT)
    except asyncio.TimeoutError:
        raise SystemExit(f"{jid}: did not come online ({bot.failures} mechanisms failed)")
    return bot


async def main():
    alice = await login("alice@localhost", "wonderland")
    bob = await login("bob@localhost", "builder")
    print("both online; alice used", alice.boundjid.full, flush=True)

    alice.send_presence(pto="bob@localhost", ptype="subscribe")
    await asyncio.wait_for(alice.subscribed.wait(), TIMEOUT)
    print("alice is subscribed to bob", flush=True)

    alice.send_message(mto="bob@localhost", mbody="Hi Bob, from slixmpp", mtype="chat")
    body = await asyncio.wait_for(bob.inbox.get(), TIMEOUT)
    assert body == "Hi Bob, from slixmpp", body
    bob.send_message(mto=alice.boundjid.full, mbody="Hi Alice", mtype="chat")
    body = await asyncio.wait_for(alice.inbox.get(), TIMEOUT)
    assert body == "Hi Alice", body
    print("chat works", flush=True)

    bob.disconnect()
    await asyncio.sleep(0.5)
    alice.send_message(mto="bob@localhost", mbody="while you were out", mtype="chat")
    await asyncio.sleep(0.5)
    bob = await login("bob@localhost", "builder")
    body = await asyncio.wait_for(bob.inbox.get(), TIMEOUT)
    assert body == "while you were out", body
    print("offline delivery works", flush=True)
    alice.disconnect()
    bob.disconnect()


asyncio.run(main())
print("OK")
