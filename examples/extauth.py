#!/usr/bin/env python3
"""External authentication for Rookery (ejabberd's extauth protocol), from a file.

Usage, in the [auth] section of rookery.toml:

    backend = "external"
    extauth_program = ["/usr/bin/python3", "/path/to/extauth.py", "/path/to/users.txt"]

The users file holds one account per line, "user@server:password": the password is
everything after the first ':' and may itself contain ':'. Empty lines and lines starting
with '#' are ignored. The file is read again for every request and rewritten (atomically)
by setpass, tryregister, removeuser and removeuser3.

The protocol: each request on standard input is a 2-byte big-endian length followed by that
many bytes of UTF-8 text, "op:User:Server[:Password]"; each answer on standard output is
the length 2 followed by a 2-byte big-endian result, 1 for yes/done and 0 for no/failed.
The script runs until standard input ends.
"""

import os
import struct
import sys
import tempfile


def read_request(stdin):
    """The next request's bytes, or None when the server has closed our input."""
    header = stdin.read(2)
    if len(header) < 2:
        return None
    # Unsigned: a request may be up to 65535 bytes long.
    (size,) = struct.unpack(">H", header)
    data = stdin.read(size)
    if len(data) < size:
        return None
    return data


def write_answer(stdout, ok):
    stdout.write(struct.pack(">HH", 2, 1 if ok else 0))
    stdout.flush()


def load_users(path):
    """{"user@server": password} from the users file (empty when it does not exist)."""
    users = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\r\n")
                if not line or line.startswith("#") or ":" not in line:
                    continue
                jid, password = line.split(":", 1)
                users[jid.lower()] = password
    except FileNotFoundError:
        pass
    return users


def save_users(path, users):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".users-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for jid, password in sorted(users.items()):
            f.write(f"{jid}:{password}\n")
    os.replace(tmp, path)


def handle(path, request):
    """The answer (True/False) to one request."""
    text = request.decode("utf-8")
    # user and server never contain ':'; the password is the rest, ':' and all.
    fields = text.split(":", 3)
    op = fields[0]
    if op in ("auth", "setpass", "tryregister", "removeuser3"):
        if len(fields) != 4:
            return False
        _, user, server, password = fields
    elif op in ("isuser", "removeuser"):
        if len(fields) != 3:
            return False
        _, user, server = fields
        password = None
    else:
        return False
    if password is not None and ("\n" in password or "\r" in password):
        return False  # one account per line: such a password cannot be stored
    jid = f"{user}@{server}".lower()
    users = load_users(path)
    if op == "auth":
        return users.get(jid) == password
    if op == "isuser":
        return jid in users
    if op == "setpass":
        if jid not in users:
            return False
        users[jid] = password
    elif op == "tryregister":
        if jid in users:
            return False
        users[jid] = password
    elif op == "removeuser":
        if jid not in users:
            return False
        del users[jid]
    elif op == "removeuser3":
        if users.get(jid) != password:
            return False
        del users[jid]
    save_users(path, users)
    return True


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(f"usage: {sys.argv[0]} USERS_FILE\n")
        return 2
    path = sys.argv[1]
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        request = read_request(stdin)
        if request is None:
            return 0
        try:
            ok = handle(path, request)
        except Exception as e:  # keep serving: a failed request is a "no"
            op = request.split(b":", 1)[0].decode("utf-8", "replace")
            sys.stderr.write(f"extauth.py: {op} failed: {e}\n")
            ok = False
        write_answer(stdout, ok)


if __name__ == "__main__":
    sys.exit(main())
