"""Object stores by URL: where recordings (VODs) live, behind one small interface.

`open_store("file:///srv/efir/recordings")` is a local folder (the default, DATA_DIR/recordings);
`s3://bucket/prefix` is the S3-compatible backend by configuration. Keys are `/`-separated relative
names (`<channel>/<broadcast>/seg-000001.ts`); a key that would leave the store (`..`, absolute,
empty parts, odd characters) is refused with ValueError, so a URL path can never reach outside it.
Writes are atomic (temporary name, then rename), so a reader never sees half an object.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ObjectStoreError(RuntimeError):
    """The store cannot be opened (unknown scheme, missing backend library)."""


def check_key(key: str) -> list[str]:
    """The parts of a valid key; ValueError for anything that is not a plain relative name."""
    parts = key.split("/")
    if not key or any(not KEY_PART.fullmatch(p) or p in (".", "..") or ".." in p for p in parts):
        raise ValueError(f"not a valid object key: {key[:120]!r}")
    return parts


class ObjectStore(Protocol):
    url: str

    def put_file(self, key: str, source: Path) -> int:
        """Store the file `source` under `key`; returns its size in bytes."""
        ...

    def put_bytes(self, key: str, data: bytes) -> int: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` (a key prefix ending at a `/` boundary, or empty for all)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many went."""
        ...


class LocalStore:
    """A folder on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key))

    def put_file(self, key: str, source: Path) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            os.link(source, tmp)  # same filesystem: no copy at all
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
        return path.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return len(data)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.read_bytes()

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(self.root).as_posix()

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix.rstrip("/"))
        if base.is_file():
            base.unlink()
            return 1
        if not base.is_dir():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return count


def open_store(url: str) -> ObjectStore:
    """The store behind `url`: `file:///abs/path` or `s3://bucket/prefix`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        raise ObjectStoreError(
            "the S3 recording store needs boto3, which this installation does not include; "
            "use a file:// URL (or add boto3 and an S3Store)"
        )
    raise ObjectStoreError(f"unsupported object store URL scheme {parts.scheme!r} (file:// or s3://)")
