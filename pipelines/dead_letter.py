"""The lander's dead-letter folder: records it cannot parse, kept whole beside the lake.

`LAKE/_dead_letter/<topic>/p<partition>/<offset>.json` holds the raw bytes (base64, plus the text when
it is UTF-8) and the parse error, so a malformed record is never lost and never blocks its partition.
Writing is atomic and idempotent (the same record gives the same file). Offsets restart at 0 when the
embedded broker restarts empty: a file of another epoch already at that offset is kept, and the new
record goes to `<offset>+e<epoch>.json` beside it.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from services.lake import tmp_path

DEAD_LETTER = "_dead_letter"


def dead_letter_dir(lake: Path, topic: str, partition: int) -> Path:
    return lake / DEAD_LETTER / topic / f"p{partition}"


def dead_letter_path(lake: Path, topic: str, partition: int, offset: int) -> Path:
    return dead_letter_dir(lake, topic, partition) / f"{offset}.json"


def write_dead_letter(
    lake: Path,
    *,
    topic: str,
    partition: int,
    offset: int,
    epoch: str,
    key: bytes | None,
    raw: bytes | None,
    error: str,
) -> Path:
    """Keep one unparseable record; returns the file written."""
    record: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "epoch": epoch,
        "key_base64": None if key is None else base64.b64encode(key).decode(),
        "raw_base64": None if raw is None else base64.b64encode(raw).decode(),
        "raw_text": _text(raw),
        "error": error,
    }
    path = dead_letter_path(lake, topic, partition, offset)
    if path.exists() and json.loads(path.read_text()).get("epoch") != epoch:
        path = path.with_name(f"{offset}+e{epoch}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    with open(tmp, "w") as fh:
        json.dump(record, fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
