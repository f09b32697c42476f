"""Two users meet in a multi-user chat room (XEP-0045) through slixmpp's xep_0045 plugin.

Usage: slixmpp_muc.py HOST PORT CA_PEM ROOM A_JID A_PASSWORD B_JID B_PASSWORD

A enters ROOM (which does not exist yet: join_muc_wait, status 201), makes it an instant
room (set_room_config with an empty submitted form); B enters; each sends a groupchat
message and sees the other's (with the room's XEP-0359 stanza-id); A makes B an admin and
B's client sees the change in B's own presence (muc::ROOM::presence); A takes it back,
kicks B (307), B comes back, A bans B (301) and B cannot come back; then A leaves.
Prints what happened at each step and "OK" at the end; exits 0 only when every check
passed, non-zero with the reasons otherwise (never waits longer than TIMEOUT s). A missing
subject after creating the room is noted and the steps go on, so that one run shows every
problem.
"""
import asyncio
import logging
import os
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout, PresenceError

HOST, PORT, CA, ROOM = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
A_JID, A_PASSWORD, B_JID, B_PASSWORD = sys.argv[5:9]
TIMEOUT = 60
STEP = 10  # seconds any one step may take
if os.environ.get("SLIXMPP_DEBUG"):
    # Every stanza sent and received, on stderr.
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")


def say(*args):
    print(*args, flush=True)


class Failed(Exception):
    pass


# What went wrong without stopping the steps that follow (reported at the end).
PROBLEMS = []


def problem(text):
    say(f"PROBLEM: {text}")
    PROBLEMS.append(text)


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.online = asyncio.Event()
        self.ssl_context = ssl.create_default_context(cafile=CA)
        # PORT is the STARTTLS port: do not try direct TLS (XEP-0368) on it first.
        self.enable_direct_tls = False
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0359"):
            self.register_plugin(plugin)
        self.muc = self.plugin["xep_0045"]
        self.add_event_handler("session_start", self.start)
        # slixmpp tries SCRAM-*-PLUS with tls-unique first, which TLS 1.3 servers cannot
        # offer; it then falls back on its own, so failures are only counted here.
        self.add_event_handler("failed_auth", self.on_failed)
        self.failures = 0

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.online.set()

    def on_failed(self, _stanza):
        self.failures += 1

    def expect(self, event, what, check):
        """The first `event` for which `check(stanza)` is true, to await. Made before the
        action that causes it, so that it cannot be missed."""
        return Expected(self, event, what, check)


class Expected:
    def __init__(self, user, event, what, check):
        self.user, self.event, self.what = user, event, what
        self.done = asyncio.get_running_loop().create_future()

        def handler(stanza):
            if not self.done.done() and check(stanza):
                self.done.set_result(stanza)

        self.handler = handler
        user.add_event_handler(event, handler)

    async def wait(self):
        try:
            return await asyncio.wait_for(self.done, STEP)
        except asyncio.TimeoutError:
            raise Failed(f"{self.user.boundjid.bare}: no {self.what} within {STEP} s")
        finally:
            self.user.del_event_handler(self.event, self.handler)

    def __await__(self):
        return self.wait().__await__()


def nick_of(stanza):
    return stanza["from"].resource


def describe(pres):
    muc = pres["muc"]
    return (f"{pres['type']} from {pres['from']}: affiliation {muc['affiliation']}, "
            f"role {muc['role']}, status {sorted(muc['status_codes'])}")


async def login(jid, password):
    user = User(jid, password)
    user.connect(HOST, PORT)
    try:
        await asyncio.wait_for(user.online.wait(), STEP)
    except asyncio.TimeoutError:
        raise Failed(f"{jid} did not come online ({user.failures} mechanisms failed)")
    say(f"{user.boundjid.full} is online")
    return user


async def join(user, nick):
    """join_muc_wait, with slixmpp's own result: (own presence, subject, occupants,
    history)."""
    try:
        return await user.muc.join_muc_wait(ROOM, nick, maxstanzas=0, timeout=STEP)
    except asyncio.TimeoutError:
        raise Failed(
            f"{nick}: join_muc_wait({ROOM!r}) got no answer within {STEP} s (it waits for "
            "the self-presence with status 110, then the room's subject, XEP-0045 §7.2)"
        )


async def main():
    a = await login(A_JID, A_PASSWORD)
    b = await login(B_JID, B_PASSWORD)
    try:
        await steps(a, b)
    finally:
        a.disconnect()
        b.disconnect()


async def steps(a, b):
    room_presence = f"muc::{ROOM}::presence"
    room_message = f"muc::{ROOM}::message"

    # 1. A creates the room: status 201 (new, locked), 110 (this is you), then (as on any
    # entry, §7.2.16) the subject, which join_muc_wait waits for.
    own = a.expect(f"muc::{ROOM}::self-presence", "self-presence on creating the room",
                   lambda p: True)
    try:
        pres, subject, occupants, _ = await a.muc.join_muc_wait(
            ROOM, "alice", maxstanzas=0, timeout=STEP / 2)
        await own
        say(f"alice entered: {describe(pres)}; subject {subject['subject']!r}")
    except asyncio.TimeoutError:
        pres, occupants = await own, []
        say(f"alice entered: {describe(pres)}; no subject")
        problem(f"join_muc_wait never returns to the creator of a room: the room sent her "
                f"self-presence (status {sorted(pres['muc']['status_codes'])}) but no subject "
                "message, which XEP-0045 §7.2.16 requires after every entry (slixmpp, like "
                "other clients, takes the subject as the end of the join)")
    codes = pres["muc"]["status_codes"]
    if 201 not in codes or 110 not in codes:
        raise Failed(f"alice: expected status 110 and 201 on creating {ROOM}, got {sorted(codes)}")
    if pres["muc"]["affiliation"] != "owner" or pres["muc"]["role"] != "moderator":
        raise Failed(f"alice: the creator should be owner and moderator: {describe(pres)}")
    if any(nick_of(p) != "alice" for p in occupants):
        raise Failed(f"alice: a new room should have nobody else in it: {occupants}")

    # While the room is locked, nobody else may enter (§10.1.1).
    try:
        await b.muc.join_muc_wait(ROOM, "bob", maxstanzas=0, timeout=STEP)
        raise Failed("bob entered the room before alice configured it")
    except asyncio.TimeoutError:
        raise Failed(f"bob: no answer within {STEP} s to entering the locked room (slixmpp "
                     "only sees a presence error that carries <x xmlns='…/muc'/>)")
    except PresenceError as e:
        say(f"bob cannot enter the locked room: {e.condition}")
        if e.condition != "item-not-found":
            raise Failed(f"bob: expected item-not-found for a locked room, got {e.condition}")

    # 2. An instant room: an empty submitted form (§10.1.2).
    form = a.plugin["xep_0004"].make_form(ftype="submit")
    await a.muc.set_room_config(ROOM, form)
    say("alice accepted the default configuration (instant room)")

    # 3. B enters; A sees B arrive.
    bob_arrives = a.expect(f"muc::{ROOM}::got_online", "presence of bob entering",
                           lambda p: nick_of(p) == "bob")
    pres, subject, occupants, _ = await join(b, "bob")
    say(f"bob entered: {describe(pres)}; subject {subject['subject']!r}; "
        f"occupants: {[nick_of(p) for p in occupants]}")
    if 110 not in pres["muc"]["status_codes"] or 201 in pres["muc"]["status_codes"]:
        raise Failed(f"bob: expected 110 and not 201: {describe(pres)}")
    if (pres["muc"]["affiliation"], pres["muc"]["role"]) != ("none", "participant"):
        raise Failed(f"bob: expected affiliation none, role participant: {describe(pres)}")
    # (slixmpp counts his own presence among the occupants who came online.)
    if sorted(nick_of(p) for p in occupants) != ["alice", "bob"]:
        raise Failed(f"bob: expected to see alice in the room: {[str(p) for p in occupants]}")
    say(f"alice saw: {describe(await bob_arrives)}")
    if sorted(b.muc.get_roster(ROOM)) != ["alice", "bob"]:
        raise Failed(f"bob's view of the room: {b.muc.get_roster(ROOM)}")

    # 4. Groupchat both ways; everyone (the sender too) gets each message, with the
    # room's stanza-id.
    for sender, sender_nick, receiver in ((a, "alice", b), (b, "bob", a)):
        body = f"hello from {sender_nick}"

        def same(m, body=body, nick=sender_nick):
            return m["body"] == body and nick_of(m) == nick

        seen = receiver.expect(room_message, f"{body!r}", same)
        echo = sender.expect(room_message, f"echo of {body!r}", same)
        sender.send_message(mto=ROOM, mbody=body, mtype="groupchat")
        got, back = await seen, await echo
        sid = got["stanza_id"]
        say(f"{receiver.boundjid.user} got {got['body']!r} from {got['from']} "
            f"(stanza-id {sid['id']!r} by {sid['by']})")
        if sid["by"] != ROOM or not sid["id"]:
            raise Failed(f"no stanza-id by {ROOM} on the groupchat message:\n{got}")
        if back["stanza_id"]["id"] != sid["id"]:
            raise Failed(f"the sender's echo has another stanza-id: {back['stanza_id']['id']!r}")

    # 5. A makes B an admin: B's own presence says so (admins are moderators).
    def bob_is(affiliation, role):
        return lambda p: (nick_of(p) == "bob" and p["type"] != "unavailable"
                          and p["muc"]["affiliation"] == affiliation and p["muc"]["role"] == role)

    for affiliation, role in (("admin", "moderator"), ("none", "participant")):
        b_sees = b.expect(room_presence, f"presence with affiliation {affiliation}",
                          bob_is(affiliation, role))
        a_sees = a.expect(room_presence, f"bob's presence with affiliation {affiliation}",
                          bob_is(affiliation, role))
        await a.muc.set_affiliation(ROOM, affiliation, jid=b.boundjid.bare)
        pres = await b_sees
        say(f"alice set bob's affiliation to {affiliation}; bob saw {describe(pres)}")
        if 110 not in pres["muc"]["status_codes"]:
            raise Failed(f"bob: his own presence lacks status 110: {pres}")
        say(f"alice saw {describe(await a_sees)}")
        if affiliation == "admin":
            admins = await a.muc.get_affiliation_list(ROOM, "admin")
            say(f"admin list: {[str(j) for j in admins]}")
            if [slixmpp.JID(j).bare for j in admins] != [b.boundjid.bare]:
                raise Failed(f"the admin list should name {b.boundjid.bare}: {admins}")

    # 6. A kicks B (role none, §8.2): B is told (307, 110), A sees him go.
    def bob_leaves(code):
        return lambda p: nick_of(p) == "bob" and p["type"] == "unavailable" \
            and code in p["muc"]["status_codes"]

    b_sees = b.expect(room_presence, "his own exit with status 307", bob_leaves(307))
    a_sees = a.expect(f"muc::{ROOM}::got_offline", "bob leaving with status 307", bob_leaves(307))
    await a.muc.set_role(ROOM, "bob", "none", reason="out you go")
    pres = await b_sees
    say(f"alice kicked bob; bob saw {describe(pres)}, reason {pres['muc']['item']['reason']!r}")
    if 110 not in pres["muc"]["status_codes"]:
        raise Failed(f"bob: the kick lacks status 110 for him: {pres}")
    say(f"alice saw {describe(await a_sees)}")
    if a.muc.get_roster(ROOM) != ["alice"]:
        raise Failed(f"alice's view of the room after the kick: {a.muc.get_roster(ROOM)}")

    # A kick is not a ban: B comes back.
    pres, _, _, _ = await join(b, "bob")
    say(f"bob came back: {describe(pres)}")

    # 7. A bans B (outcast, §9.1): B is told (301), A sees him go, B cannot come back.
    b_sees = b.expect(room_presence, "his own exit with status 301", bob_leaves(301))
    a_sees = a.expect(f"muc::{ROOM}::got_offline", "bob leaving with status 301", bob_leaves(301))
    await a.muc.set_affiliation(ROOM, "outcast", jid=b.boundjid.bare, reason="for good")
    say(f"alice banned bob; bob saw {describe(await b_sees)}")
    say(f"alice saw {describe(await a_sees)}")
    outcasts = await a.muc.get_affiliation_list(ROOM, "outcast")
    if [slixmpp.JID(j).bare for j in outcasts] != [b.boundjid.bare]:
        raise Failed(f"the outcast list should name {b.boundjid.bare}: {outcasts}")
    try:
        await b.muc.join_muc_wait(ROOM, "bob", maxstanzas=0, timeout=STEP)
        raise Failed("bob entered the room he is banned from")
    except asyncio.TimeoutError:
        raise Failed(f"bob: no answer within {STEP} s to entering the room he is banned from")
    except PresenceError as e:
        say(f"bob cannot come back: {e.condition}")
        if e.condition != "forbidden":
            raise Failed(f"bob: expected forbidden for an outcast, got {e.condition}")

    # 8. A leaves (§7.14): the room confirms with status 110 and her status text. (slixmpp
    # forgets the room as it sends the presence, so only the plain groupchat_presence
    # event reports the answer.)
    gone = a.expect("groupchat_presence", "her own exit",
                    lambda p: p["from"] == f"{ROOM}/alice" and p["type"] == "unavailable")
    a.muc.leave_muc(ROOM, "alice", msg="goodbye")
    pres = await gone
    say(f"alice left: {describe(pres)}, status text {pres['status']!r}")
    if 110 not in pres["muc"]["status_codes"] or pres["status"] != "goodbye":
        raise Failed(f"alice: her exit should carry status 110 and 'goodbye': {pres}")


try:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
except Failed as e:
    raise SystemExit(f"FAILED: {e}")
except IqError as e:
    raise SystemExit(f"FAILED: the server answered with an error: {e.condition} {e.text!r}\n{e.iq}")
except IqTimeout as e:
    raise SystemExit(f"FAILED: no answer to {e.iq}")
except PresenceError as e:
    raise SystemExit(f"FAILED: the room refused a presence: {e.condition} {e.text!r}\n{e.presence}")
except asyncio.TimeoutError:
    raise SystemExit(f"FAILED: timed out after {TIMEOUT} s (see the last step printed)")
if PROBLEMS:
    raise SystemExit("FAILED: every step ran, but:\n" + "\n".join(f"- {p}" for p in PROBLEMS))
print("OK")
