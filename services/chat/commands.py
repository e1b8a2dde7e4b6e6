"""Chat commands (`/timeout bob 600 spam`), parsed into one typed value the node applies.

The same value comes from a chat line or from the moderation API, so both paths check the same
permission and write the same audit row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from services.chat.roles import Permission

MAX_TIMEOUT_SECONDS = 14 * 24 * 3600
MAX_SLOW_SECONDS = 3600
_USER = re.compile(r"^@?([\w.\-]{1,64})$")


class Verb(StrEnum):
    TIMEOUT = "timeout"
    BAN = "ban"
    IPBAN = "ipban"  # a ban that also blocks the user's address fingerprint from writing
    UNBAN = "unban"
    SLOW = "slow"
    SUBONLY = "subonly"
    EMOTEONLY = "emoteonly"
    CLEAR = "clear"
    MOD = "mod"
    UNMOD = "unmod"
    DELETE = "delete"


#: Which permission each command needs (data, like the role matrix).
REQUIRES: dict[Verb, Permission] = {
    Verb.TIMEOUT: Permission.TIMEOUT,
    Verb.BAN: Permission.BAN,
    Verb.IPBAN: Permission.BAN,
    Verb.UNBAN: Permission.BAN,
    Verb.SLOW: Permission.SET_MODES,
    Verb.SUBONLY: Permission.SET_MODES,
    Verb.EMOTEONLY: Permission.SET_MODES,
    Verb.CLEAR: Permission.CLEAR,
    Verb.MOD: Permission.MANAGE_MODERATORS,
    Verb.UNMOD: Permission.MANAGE_MODERATORS,
    Verb.DELETE: Permission.DELETE_MESSAGE,
}


class CommandError(ValueError):
    """A command that does not parse; the message is the usage line to show."""


@dataclass(frozen=True)
class Command:
    verb: Verb
    target: str | None = None  # user id or display name (without @), or message id for /delete
    seconds: int | None = None  # /timeout duration, /slow interval (0 = off)
    enabled: bool | None = None  # /subonly, /emoteonly
    reason: str = ""


USAGE: dict[Verb, str] = {
    Verb.TIMEOUT: "/timeout <user> <seconds> [reason]",
    Verb.BAN: "/ban <user> [reason]",
    Verb.IPBAN: "/ipban <user> [reason]",
    Verb.UNBAN: "/unban <user>",
    Verb.SLOW: "/slow <seconds>|off",
    Verb.SUBONLY: "/subonly [on|off]",
    Verb.EMOTEONLY: "/emoteonly [on|off]",
    Verb.CLEAR: "/clear",
    Verb.MOD: "/mod <user>",
    Verb.UNMOD: "/unmod <user>",
    Verb.DELETE: "/delete <message id>",
}


def is_command(text: str) -> bool:
    return text.startswith("/") and not text.startswith("//")


def _user(arg: str | None, verb: Verb) -> str:
    match = _USER.match(arg or "")
    if match is None:
        raise CommandError(f"usage: {USAGE[verb]}")
    return match.group(1)


def _switch(arg: str | None, verb: Verb) -> bool:
    if arg is None or arg.lower() in ("on", "1", "true"):
        return True
    if arg.lower() in ("off", "0", "false"):
        return False
    raise CommandError(f"usage: {USAGE[verb]}")


def parse(text: str) -> Command:
    """Parse one command line; raises CommandError with the usage line on anything malformed."""
    parts = text.strip().split(maxsplit=3)
    name = parts[0][1:].lower() if parts and parts[0].startswith("/") else ""
    try:
        verb = Verb(name)
    except ValueError:
        raise CommandError(f"unknown command /{name}; known: " + ", ".join(f"/{v}" for v in Verb)) from None
    args = parts[1:]
    arg1 = args[0] if args else None
    if verb is Verb.TIMEOUT:
        if len(args) < 2 or not args[1].isdigit():
            raise CommandError(f"usage: {USAGE[verb]}")
        seconds = int(args[1])
        if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
            raise CommandError(f"a timeout lasts 1 to {MAX_TIMEOUT_SECONDS} seconds")
        return Command(verb, _user(arg1, verb), seconds=seconds, reason=" ".join(args[2:])[:200])
    if verb in (Verb.BAN, Verb.IPBAN):
        return Command(verb, _user(arg1, verb), reason=" ".join(args[1:])[:200])
    if verb in (Verb.UNBAN, Verb.MOD, Verb.UNMOD):
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE[verb]}")
        return Command(verb, _user(arg1, verb))
    if verb is Verb.SLOW:
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE[verb]}")
        seconds = 0 if args[0].lower() == "off" else int(args[0]) if args[0].isdigit() else -1
        if not 0 <= seconds <= MAX_SLOW_SECONDS:
            raise CommandError(f"slow mode takes 0 to {MAX_SLOW_SECONDS} seconds, or off")
        return Command(verb, seconds=seconds)
    if verb in (Verb.SUBONLY, Verb.EMOTEONLY):
        if len(args) > 1:
            raise CommandError(f"usage: {USAGE[verb]}")
        return Command(verb, enabled=_switch(arg1, verb))
    if verb is Verb.CLEAR:
        if args:
            raise CommandError(f"usage: {USAGE[verb]}")
        return Command(verb)
    if len(args) != 1 or not re.fullmatch(r"[0-9a-f-]{36}", args[0]):
        raise CommandError(f"usage: {USAGE[verb]}")
    return Command(verb, args[0])
