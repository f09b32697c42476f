"""A jury member creates a contest task with slixmpp's XEP-0050 client API.

Usage: slixmpp_neerc.py HOST PORT CA_PEM JID PASSWORD SERVICE_JID TITLE ASSIGNEES

Logs in over STARTTLS, lists the commands of SERVICE_JID (get_commands), runs
neerc:create there (start_command, the form filled in, complete_command) and checks that
it completed. Prints each step and "OK" at the end; exits non-zero with the reason
otherwise (never waits longer than TIMEOUT s).
"""
import asyncio
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

HOST, PORT, CA = sys.argv[1], int(sys.argv[2]), sys.argv[3]
JID, PASSWORD, SERVICE, TITLE, ASSIGNEES = sys.argv[4:9]
TIMEOUT = 30
NODE = "neerc:create"


def say(*args):
    print(*args, flush=True)


class Failed(Exception):
    pass


class Jury(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID, PASSWORD)
        self.online = asyncio.Event()
        self.ssl_context = ssl.create_default_context(cafile=CA)
        self.enable_direct_tls = False
        for plugin in ("xep_0030", "xep_0004", "xep_0050"):
            self.register_plugin(plugin)
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        self.send_presence()
        self.online.set()


async def create_task(jury):
    done = asyncio.get_running_loop().create_future()

    def on_error(iq, session):
        if not done.done():
            done.set_exception(Failed(
                f"the service answered with an error: {iq['error']['condition']} "
                f"{iq['error']['text']!r}"))

    def on_result(iq, session):
        if not done.done():
            done.set_result(iq)

    def on_form(iq, session):
        form = iq["command"]["form"]
        fields = form.get_fields()
        say("form fields: " + ", ".join(f"{v} ({f['type']})" for v, f in fields.items()))
        types = [o["value"] for o in fields["type"]["options"]]
        if "todo" not in types:
            return on_error_text(f"no todo type among {types}")
        form["type"] = "submit"
        form.set_values({"title": TITLE, "type": "todo", "assignees": ASSIGNEES})
        session["payload"] = form
        session["next"] = on_result
        jury.plugin["xep_0050"].complete_command(session)

    def on_error_text(text):
        if not done.done():
            done.set_exception(Failed(text))

    session = {"next": on_form, "error": on_error}
    jury.plugin["xep_0050"].start_command(jid=SERVICE, node=NODE, session=session)
    iq = await done
    command = iq["command"]
    if command["status"] != "completed":
        raise Failed(f"status {command['status']!r}, expected completed")
    say(f"{NODE}: completed, notes {command['notes']}")


async def main():
    jury = Jury()
    jury.connect(HOST, PORT)
    await asyncio.wait_for(jury.online.wait(), 10)
    say(f"{jury.boundjid.full} is online")
    try:
        items = await jury.plugin["xep_0050"].get_commands(jid=SERVICE)
        nodes = [item[1] for item in items["disco_items"]["items"]]
        say(f"get_commands({SERVICE!r}): {nodes}")
        if NODE not in nodes:
            raise Failed(f"{NODE} is not listed")
        await create_task(jury)
    finally:
        jury.disconnect()


try:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
except Failed as e:
    raise SystemExit(f"FAILED: {e}")
except IqError as e:
    raise SystemExit(f"FAILED: the server answered with an error: {e.condition} {e.text!r}")
except IqTimeout as e:
    raise SystemExit(f"FAILED: no answer to {e.iq}")
except asyncio.TimeoutError:
    raise SystemExit(f"FAILED: timed out after {TIMEOUT} s")
print("OK")
