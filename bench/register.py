#!/usr/bin/env python3
"""Create benchmark accounts by in-band registration (XEP-0077), or check one login.

Standard library only, so it runs with any python3 on the machine.

    register.py --port PORT N PREFIX PASSWORD
        creates PREFIX1 .. PREFIXN with PASSWORD over a few parallel plaintext streams,
        several registrations in flight per stream; an account that already exists
        ("conflict") counts as done. Exits 1 if any registration failed.

    register.py --port PORT --check USER PASSWORD
        opens a stream and authenticates USER with SASL PLAIN when the server offers
        it on this stream, SCRAM-SHA-1 otherwise (or --mech). Exits 0 on <success/>.

Only for servers on loopback with plaintext c2s and in-band registration enabled
(the peers.sh configurations): nothing is encrypted. Registration happens on the
unauthenticated stream, which all three servers accept, and none of them throttles it
from loopback: Prosody's mod_register_limits only throttles when
min_seconds_between_registrations is set (the template does not) and allowlists
127.0.0.1 and ::1 anyway; ejabberd's template sets registration_timeout: infinity.
Servers hash each new password (PBKDF2, 4096 iterations), so registering is CPU-bound
on the server: ejabberd takes tens of milliseconds of CPU per account.
rookery offers PLAIN only over TLS, so --check uses SCRAM-SHA-1 against it.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import os
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_REGISTER = "jabber:iq:register"


class StreamClosed(Exception):
    pass


class Stream:
    """One plaintext c2s stream: send raw XML strings, receive top-level elements."""

    def __init__(self, host, port, domain, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.domain = domain
        self.parser = None
        self.depth = 0
        self.ready = []  # complete top-level elements not yet returned
        self.features = self.open()

    def send(self, data):
        self.sock.sendall(data.encode("utf-8"))

    def open(self):
        """Send a stream header; return the server's <stream:features/>."""
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.ready = []
        self.send(
            "<?xml version='1.0'?><stream:stream to=%s version='1.0' "
            "xmlns='jabber:client' xmlns:stream='%s'>" % (quoteattr(self.domain), NS_STREAM)
        )
        features = self.next()
        if features.tag != "{%s}features" % NS_STREAM:
            raise StreamClosed("expected <stream:features/>, got %s" % describe(features))
        return features

    def next(self):
        """The next top-level element (stanza, nonza, features). Raises on stream end."""
        while not self.ready:
            data = self.sock.recv(65536)
            if not data:
                raise StreamClosed("the server closed the connection")
            self.parser.feed(data)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.ready.append(el)
                    elif self.depth == 0:
                        raise StreamClosed("the server closed the stream")
        el = self.ready.pop(0)
        if el.tag == "{%s}error" % NS_STREAM:
            raise StreamClosed("stream error: %s" % describe(el))
        return el

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()


def describe(el):
    """A short text for an element: its name and its error condition or text, if any."""
    name = el.tag.split("}")[-1]
    parts = [name]
    for child in el.iter():
        tag = child.tag.split("}")[-1]
        if child is not el and tag not in ("error", "text") and child.tag.startswith(
            ("{%s}" % NS_STANZAS, "{urn:ietf:params:xml:ns:xmpp-streams}", "{%s}" % NS_SASL)
        ):
            parts.append(tag)
        if tag == "text" and child.text:
            parts.append(repr(child.text.strip()))
    return " ".join(parts)


def register_iq(iq_id, user, password):
    return (
        "<iq type='set' id=%s><query xmlns='%s'><username>%s</username>"
        "<password>%s</password></query></iq>"
        % (quoteattr(iq_id), NS_REGISTER, escape(user), escape(password))
    )


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.created = 0
        self.existed = 0
        self.failed = 0
        self.reconnects = 0
        self.errors = {}  # description -> count

    def add(self, outcome, detail=None):
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if detail:
                self.errors[detail] = self.errors.get(detail, 0) + 1


def register_worker(args, users, tally):
    """Register `users`, at most args.window requests in flight on one stream at a time.

    Each stream is used for at most args.stream_secs seconds of new requests, then
    drained and replaced: Prosody closes streams that stay unauthenticated longer than its
    c2s_timeout (5 s in the benchmark template). If a stream ends anyway, the unanswered
    registrations are sent again on a new one (an account that was in fact created then
    answers "conflict" and counts as already existing).
    """
    queue = collections.deque(users)
    failures = 0  # consecutive streams that ended without answering anything
    while queue:
        try:
            stream = Stream(args.host, args.port, args.domain, args.timeout)
        except (OSError, StreamClosed, ET.ParseError) as e:
            failures += 1
            if failures > args.retries:
                for _ in range(len(queue)):
                    tally.add("failed", "connect: %s" % e)
                return
            time.sleep(0.5)
            continue
        opened = time.monotonic()
        pending = {}  # iq id -> user
        try:
            while queue or pending:
                batch = []
                fresh = time.monotonic() - opened < args.stream_secs
                while fresh and queue and len(pending) < args.window:
                    user = queue.popleft()
                    iq_id = "r-" + user
                    pending[iq_id] = user
                    batch.append(register_iq(iq_id, user, args.password))
                if batch:
                    stream.send("".join(batch))
                if not pending:
                    break  # this stream is old enough: go on with a new one
                el = stream.next()
                iq_id = el.get("id")
                if not el.tag.endswith("}iq") or iq_id not in pending:
                    continue  # anything else (a message of the day, a stray stanza) is ignored
                del pending[iq_id]
                failures = 0
                if el.get("type") == "result":
                    tally.add("created")
                elif el.find(".//{%s}conflict" % NS_STANZAS) is not None:
                    tally.add("existed")
                else:
                    tally.add("failed", describe(el))
        except (OSError, StreamClosed, ET.ParseError) as e:
            failures += 1
            if failures > args.retries:
                for _ in range(len(pending) + len(queue)):
                    tally.add("failed", str(e))
                return
            queue.extendleft(reversed(list(pending.values())))
            tally.add("reconnects", str(e) if args.verbose else None)
        finally:
            stream.close()


def register(args):
    names = ["%s%d" % (args.prefix, i) for i in range(args.first, args.first + args.n)]
    conns = max(1, min(args.connections, len(names)))
    tally = Tally()
    started = time.monotonic()
    threads = [
        threading.Thread(target=register_worker, args=(args, names[i::conns], tally))
        for i in range(conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    print(
        "registered %d of %d accounts %s%d..%s%d on %s:%d in %.2f s (%.0f/s): "
        "%d created, %d already existed, %d failed, %d streams ended early"
        % (
            tally.created + tally.existed, len(names), args.prefix, args.first, args.prefix,
            args.first + args.n - 1, args.host, args.port, elapsed,
            len(names) / elapsed if elapsed > 0 else 0.0,
            tally.created, tally.existed, tally.failed, tally.reconnects,
        )
    )
    for detail, count in sorted(tally.errors.items(), key=lambda kv: -kv[1]):
        print("  %d x %s" % (count, detail), file=sys.stderr)
    return 0 if tally.failed == 0 else 1


def sasl_name(user):
    return user.replace("=", "=3D").replace(",", "=2C")


def auth_plain(stream, user, password):
    token = base64.b64encode(("\0%s\0%s" % (user, password)).encode("utf-8")).decode()
    stream.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
    return stream.next()


def auth_scram(stream, user, password, mech):
    """SCRAM-SHA-1 / SCRAM-SHA-256 without channel binding (RFC 5802)."""
    hash_name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=%s,r=%s" % (sasl_name(user), nonce)
    b64 = lambda b: base64.b64encode(b).decode()
    stream.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                % (NS_SASL, mech, b64(("n,," + first_bare).encode())))
    el = stream.next()
    if not el.tag.endswith("}challenge"):
        return el
    server_first = base64.b64decode(el.text or "").decode()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    if not fields["r"].startswith(nonce):
        raise StreamClosed("server nonce does not extend the client nonce")
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"),
                                 base64.b64decode(fields["s"]), int(fields["i"]))
    mac = lambda key, msg: hmac.new(key, msg.encode(), hash_name).digest()
    client_key = mac(salted, "Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    final_bare = "c=biws,r=%s" % fields["r"]
    auth_message = ",".join((first_bare, server_first, final_bare))
    proof = bytes(a ^ b for a, b in zip(client_key, mac(stored_key, auth_message)))
    stream.send("<response xmlns='%s'>%s</response>"
                % (NS_SASL, b64(("%s,p=%s" % (final_bare, b64(proof))).encode())))
    el = stream.next()
    if el.tag.endswith("}success"):
        # Check the server's signature (in <success/>, or in one more challenge).
        data = el.text
        if not data:
            return el
        answer = base64.b64decode(data).decode()
        expected = "v=" + b64(mac(mac(salted, "Server Key"), auth_message))
        if answer != expected:
            raise StreamClosed("the server's SCRAM signature is wrong")
    return el


def check(args):
    user, password = args.check
    stream = Stream(args.host, args.port, args.domain, args.timeout)
    mechs = [m.text for m in stream.features.iter("{%s}mechanism" % NS_SASL)]
    mech = args.mech or ("PLAIN" if "PLAIN" in mechs else "SCRAM-SHA-1")
    if mech not in mechs:
        print("%s is not offered on this stream (offered: %s)" % (mech, ", ".join(mechs)))
        return 1
    started = time.monotonic()
    try:
        if mech == "PLAIN":
            el = auth_plain(stream, user, password)
        else:
            el = auth_scram(stream, user, password, mech)
    finally:
        stream.close()
    ms = (time.monotonic() - started) * 1000
    if el.tag == "{%s}success" % NS_SASL:
        print("%s@%s authenticated with %s in %.1f ms (offered: %s)"
              % (user, args.domain, mech, ms, ", ".join(mechs)))
        return 0
    print("%s@%s was not authenticated with %s: %s" % (user, args.domain, mech, describe(el)))
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--connections", type=int, default=4, help="parallel streams (default 4)")
    p.add_argument("--window", type=int, default=16,
                   help="registrations in flight per stream (default 16)")
    p.add_argument("--stream-secs", type=float, default=2.5,
                   help="send on one stream for at most this long, then use a new one "
                        "(default 2.5, under Prosody's 5 s limit for unauthenticated streams)")
    p.add_argument("--retries", type=int, default=5,
                   help="give up after this many streams in a row end without progress")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list why streams ended early")
    p.add_argument("--first", type=int, default=1, help="number of the first account")
    p.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
    p.add_argument("--check", nargs=2, metavar=("USER", "PASSWORD"),
                   help="authenticate USER instead of registering")
    p.add_argument("--mech", choices=("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"),
                   help="mechanism for --check (default PLAIN if offered, else SCRAM-SHA-1)")
    p.add_argument("n", type=int, nargs="?")
    p.add_argument("prefix", nargs="?")
    p.add_argument("password", nargs="?")
    args = p.parse_args()
    try:
        if args.check:
            return check(args)
        if args.n is None or args.prefix is None or args.password is None:
            p.error("N PREFIX PASSWORD are required (or --check USER PASSWORD)")
        return register(args)
    except (OSError, StreamClosed, ET.ParseError) as e:
        print("error: %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
