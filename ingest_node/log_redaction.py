"""Keep credentials that clients put in URLs out of the server's logs.

Viewers open the master playlist with `?token=<chat token>` and chat sockets connect with the same
parameter; uvicorn logs every request line (access log) and every WebSocket handshake (error log) with
its query string. This filter rewrites those records so the token's value reads `***` before any
handler sees it.
"""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are credentials.
SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:token|access_token)=)[^&#\s\"']*", re.I)
#: The loggers uvicorn writes request lines and WebSocket handshakes to.
URL_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    return SECRET_QUERY.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """Rewrites the message and string arguments of a record; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Attach the filter to uvicorn's loggers (once; uvicorn's dictConfig keeps logger filters)."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
