"""Chat roles and the permission matrix, kept as data so every check reads one table.

A role is looked up on the server (the node's database), never taken from what a client sends. Ranks
order the roles so a moderator cannot time out the owner or another moderator.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(StrEnum):
    ANONYMOUS = "anonymous"
    VIEWER = "viewer"
    SUBSCRIBER = "subscriber"
    VIP = "vip"
    MODERATOR = "moderator"
    OWNER = "owner"


class Permission(StrEnum):
    READ = "read"
    SEND = "send"
    SEND_IN_SUBONLY = "send_in_subonly"
    BYPASS_SLOW = "bypass_slow"
    BYPASS_RATE_LIMIT = "bypass_rate_limit"
    BYPASS_AUTOMOD = "bypass_automod"
    POST_LINKS = "post_links"
    DELETE_MESSAGE = "delete_message"
    TIMEOUT = "timeout"
    BAN = "ban"
    SET_MODES = "set_modes"
    CLEAR = "clear"
    REVIEW_HELD = "review_held"
    MANAGE_MODERATORS = "manage_moderators"
    CONFIGURE_AUTOMOD = "configure_automod"
    MANAGE_EMOTES = "manage_emotes"
    USE_ALL_EMOTES = "use_all_emotes"  # the owner uses the channel's subscriber emotes of every tier


class Rank(IntEnum):
    ANONYMOUS = 0
    VIEWER = 1
    SUBSCRIBER = 2
    VIP = 3
    MODERATOR = 4
    OWNER = 5


P = Permission
_VIEWER = frozenset({P.READ, P.SEND})
_SUBSCRIBER = _VIEWER | {P.SEND_IN_SUBONLY}
_VIP = _SUBSCRIBER | {P.BYPASS_SLOW, P.POST_LINKS}
_MODERATOR = _VIP | {
    P.BYPASS_RATE_LIMIT,
    P.BYPASS_AUTOMOD,
    P.DELETE_MESSAGE,
    P.TIMEOUT,
    P.BAN,
    P.SET_MODES,
    P.CLEAR,
    P.REVIEW_HELD,
}

#: The permission matrix: the only place that says who may do what.
MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ANONYMOUS: frozenset({P.READ}),
    Role.VIEWER: _VIEWER,
    Role.SUBSCRIBER: _SUBSCRIBER,
    Role.VIP: _VIP,
    Role.MODERATOR: _MODERATOR,
    Role.OWNER: _MODERATOR | {P.MANAGE_MODERATORS, P.CONFIGURE_AUTOMOD, P.MANAGE_EMOTES, P.USE_ALL_EMOTES},
}


def can(role: Role, permission: Permission) -> bool:
    return permission in MATRIX[role]


def rank(role: Role) -> Rank:
    return Rank[role.name]


def may_act_on(actor: Role, target: Role) -> bool:
    """Moderation applies downwards only: nobody times out an equal or a superior."""
    return rank(actor) > rank(target)


def effective_role(stored: Role | None, sub_tier: int) -> Role:
    """A signed-in user's role: the stored channel role, lifted to subscriber by an active subscription."""
    role = stored or Role.VIEWER
    if sub_tier > 0 and rank(role) < Rank.SUBSCRIBER:
        return Role.SUBSCRIBER
    return role
