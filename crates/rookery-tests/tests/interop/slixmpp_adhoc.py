"""An administrator runs XEP-0133 commands through slixmpp's XEP-0050 client API.

Usage: slixmpp_adhoc.py HOST PORT CA_PEM ADMIN_JID ADMIN_PASSWORD NEW_JID NEW_PASSWORD

The admin logs in over STARTTLS, lists the commands of the server's domain
(get_commands), adds the account NEW_JID with NEW_PASSWORD (add-user through
start_command / complete_command) and checks that get-online-users-list names the
admin. Prints what happened at each step and "OK" at the end; exits 0 only when every
check passed, non-zero with the reason otherwise (never waits longer than TIMEOUT s).
"""
import asyncio
import logging
import os
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

HOST, PORT, CA = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ADMIN_JID, ADMIN_PASSWORD = sys.argv[4], sys.argv[5]
NEW_JID, NEW_PASSWORD = sys.argv[6], sys.argv[7]
TIMEOUT = 30
if os.environ.get("SLIXMPP_DEBUG"):
    # Every stanza sent and received, on stderr.
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
ADMIN = "http://jabber.org/protocol/admin"
ADD_USER = ADMIN + "#add-user"
ONLINE_LIST = ADMIN + "#get-online-users-list"


def say(*args):
    print(*args, flush=True)


class Failed(Exception):
    pass


class Admin(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.online = asyncio.Event()
        self.ssl_context = ssl.create_default_context(cafile=CA)
        # PORT is the STARTTLS port: do not try direct TLS (XEP-0368) on it first.
        self.enable_direct_tls = False
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0050")
        self.add_event_handler("session_start", self.start)
        # slixmpp tries SCRAM-*-PLUS with tls-unique first, which TLS 1.3 servers cannot
        # offer; it then falls back on its own, so failures are only counted here.
        self.add_event_handler("failed_auth", self.on_failed)
        self.failures = 0

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        self.online.set()

    def on_failed(self, stanza):
        self.failures += 1
        say(f"a SASL mechanism failed: {stanza['condition']} {stanza['text']}")

    def run_command(self, node, fill):
        """Run `node` the way slixmpp's API intends: start_command, then `fill` the form
        of the first stage and complete_command. Resolves to the final reply <iq/>."""
        done = asyncio.get_running_loop().create_future()

        def finish(value=None, error=None):
            if not done.done():
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(value)

        def on_error(iq, session):
            finish(error=Failed(
                f"{node}: the server answered with an error: "
                f"{iq['error']['type']}/{iq['error']['condition']} "
                f"{iq['error']['text']!r}\n{iq}"
            ))

        def on_result(iq, session):
            say(f"{node}: final reply: {iq}")
            finish(iq)

        def on_form(iq, session):
            say(f"{node}: first reply: {iq}")
            command = iq["command"]
            if command["status"] != "executing":
                return finish(error=Failed(
                    f"{node}: expected status 'executing' with a form, got "
                    f"{command['status']!r}\n{iq}"
                ))
            if "complete" not in command["actions"]:
                return finish(error=Failed(
                    f"{node}: the stage does not offer 'complete': {command['actions']}"
                ))
            form = command["form"]
            if form["type"] != "form":
                return finish(error=Failed(f"{node}: expected a form, got {form['type']!r}"))
            fields = form.get_fields()
            say(f"{node}: form fields: " + ", ".join(
                f"{var} ({f['type']}{', required' if f['required'] else ''})"
                for var, f in fields.items()
            ))
            try:
                values = fill(fields)
            except Failed as e:
                return finish(error=e)
            # Answer on the form received, as slixmpp's examples do: type 'submit' strips
            # labels, options and types (hidden FORM_TYPE keeps its value).
            form["type"] = "submit"
            form.set_values(values)
            session["payload"] = form
            session["next"] = on_result
            say(f"{node}: submitting with action 'complete': {form}")
            self.plugin["xep_0050"].complete_command(session)

        session = {"next": on_form, "error": on_error}
        self.plugin["xep_0050"].start_command(jid=self.boundjid.domain, node=node, session=session)
        return done


def check_completed(node, iq):
    command = iq["command"]
    if iq["type"] != "result":
        raise Failed(f"{node}: final reply has type {iq['type']!r}")
    if command["status"] != "completed":
        raise Failed(f"{node}: final status is {command['status']!r}, expected 'completed'")
    notes = command["notes"]
    say(f"{node}: status completed, notes {notes}")
    errors = [text for kind, text in notes if kind == "error"]
    if errors:
        raise Failed(f"{node}: completed with error note(s): {errors}")
    return command


async def main():
    admin = Admin(ADMIN_JID, ADMIN_PASSWORD)
    admin.connect(HOST, PORT)
    try:
        await asyncio.wait_for(admin.online.wait(), 10)
    except asyncio.TimeoutError:
        raise Failed(f"{ADMIN_JID} did not come online ({admin.failures} mechanisms failed)")
    say(f"{admin.boundjid.full} is online")
    try:
        await steps(admin)
    finally:
        admin.disconnect()


async def steps(admin):
    domain = admin.boundjid.domain
    items = await admin.plugin["xep_0050"].get_commands(jid=domain)
    listed = {item[1]: item[2] for item in items["disco_items"]["items"]}
    say(f"get_commands({domain!r}): {len(listed)} commands")
    for node in (ADD_USER, ONLINE_LIST):
        if node not in listed:
            raise Failed(f"get_commands does not list {node}; it lists {sorted(listed)}\n{items}")
        say(f"  listed: {node} ({listed[node]!r})")

    def fill_add_user(fields):
        for var in ("accountjid", "password", "password-verify"):
            if var not in fields:
                raise Failed(f"add-user: the form has no field {var!r}")
        # slixmpp reads hidden fields as multi-valued: ['http://jabber.org/protocol/admin'].
        form_type = fields["FORM_TYPE"]["value"] if "FORM_TYPE" in fields else None
        if form_type not in ([ADMIN], ADMIN):
            raise Failed(f"add-user: FORM_TYPE is {form_type!r}, expected {ADMIN!r}")
        return {
            "accountjid": NEW_JID,
            "password": NEW_PASSWORD,
            "password-verify": NEW_PASSWORD,
        }

    iq = await admin.run_command(ADD_USER, fill_add_user)
    check_completed("add-user", iq)
    say(f"add-user: {NEW_JID} was added")

    def fill_online_list(fields):
        if "max_items" not in fields:
            raise Failed("get-online-users-list: the form has no field 'max_items'")
        options = [o["value"] for o in fields["max_items"]["options"]]
        say(f"get-online-users-list: max_items options {options}, "
            f"default {fields['max_items']['value']!r}")
        if "25" not in options:
            raise Failed(f"get-online-users-list: max_items does not offer 25: {options}")
        return {"max_items": "25"}

    iq = await admin.run_command(ONLINE_LIST, fill_online_list)
    command = check_completed("get-online-users-list", iq)
    form = command["form"]
    if form["type"] != "result":
        raise Failed(f"get-online-users-list: expected a result form, got {form['type']!r}")
    fields = form.get_fields()
    if "onlineuserjids" not in fields:
        raise Failed(f"get-online-users-list: no field 'onlineuserjids' in {sorted(fields)}")
    jids = fields["onlineuserjids"]["value"] or []
    if isinstance(jids, str):
        jids = [jids]
    say(f"get-online-users-list: onlineuserjids = {jids}")
    if admin.boundjid.bare not in jids:
        raise Failed(f"get-online-users-list: {admin.boundjid.bare} is not listed")


try:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
except Failed as e:
    raise SystemExit(f"FAILED: {e}")
except IqError as e:
    raise SystemExit(f"FAILED: the server answered with an error: {e.condition} {e.text!r}\n{e.iq}")
except IqTimeout as e:
    raise SystemExit(f"FAILED: no answer to {e.iq}")
except asyncio.TimeoutError:
    raise SystemExit(f"FAILED: timed out after {TIMEOUT} s (see the last step printed)")
print("OK")
