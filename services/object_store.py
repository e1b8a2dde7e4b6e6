"""Object stores by URL: where recordings (VODs) live, behind one small interface.

`open_store("file:///srv/efir/recordings")` is a local folder (the default, DATA_DIR/recordings);
`s3://bucket/prefix` is the S3-compatible backend by configuration (AWS, MinIO, Ceph...: endpoint,
region and credentials come from Settings, `EFIR_S3_*`; path-style addressing, so an endpoint needs no
per-bucket DNS). Keys are `/`-separated relative
names (`<channel>/<broadcast>/seg-000001.ts`); a key that would leave the store (`..`, absolute,
empty parts, odd characters) is refused with ValueError, so a URL path can never reach outside it.
Writes are atomic (temporary name, then rename; an S3 PUT is atomic by itself), so a reader never sees
half an object. A store that cannot be reached or refuses us (wrong credentials, no such bucket) raises
`ObjectStoreUnavailable`, an OSError whose message says what to fix and never holds a secret.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from services.settings import Settings

KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ObjectStoreError(RuntimeError):
    """The store cannot be opened (unknown scheme, missing backend library, a malformed URL)."""


class ObjectStoreUnavailable(OSError):
    """The store was opened but an operation failed (unreachable, refused, no such bucket). An OSError,
    like a full disk under a local store: callers keep what they could not store and retry later."""


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


S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
S3_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
}


class S3Store:
    """A bucket (and key prefix) of an S3-compatible service, through boto3.

    One boto3 client, shared by every thread (boto3 clients are thread-safe; the node serves VOD
    requests from its thread pool). Keys are checked exactly as the local store checks them.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - boto3 is a dependency
            raise ObjectStoreError("the S3 recording store needs boto3") from exc
        if not bucket:
            raise ObjectStoreError("an s3:// recordings URL needs a bucket: s3://BUCKET/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.endpoint = endpoint_url or "AWS S3"
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        credentials = (
            {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id
            else {}  # boto3's default chain: environment, shared files, instance role
        )
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(
                s3={"addressing_style": "path"},  # MinIO and test doubles have no per-bucket host names
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                # Checksums only where S3 requires them: many S3-compatible services refuse the
                # newer default (CRC32 trailers on every PUT).
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
            **credentials,
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _failure(self, operation: str, key: str, exc: Exception) -> ObjectStoreUnavailable:
        """A clear message for a failed call: which bucket, which endpoint, what to fix."""
        from botocore.exceptions import ClientError, NoCredentialsError

        where = f"bucket {self.bucket!r} at {self.endpoint}"
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket",):
                return ObjectStoreUnavailable(f"S3 {operation} {key!r}: {where} does not exist (create it)")
            if code in S3_CREDENTIAL_CODES or code in ("403", "Forbidden"):
                return ObjectStoreUnavailable(
                    f"S3 {operation} {key!r}: {where} refused the credentials ({code}); "
                    "check EFIR_S3_ACCESS_KEY_ID and EFIR_S3_SECRET_ACCESS_KEY"
                )
            return ObjectStoreUnavailable(f"S3 {operation} {key!r} in {where} failed: {code or exc}")
        if isinstance(exc, NoCredentialsError):
            return ObjectStoreUnavailable(
                f"S3 {operation} {key!r}: no credentials for {where}; set EFIR_S3_ACCESS_KEY_ID and "
                "EFIR_S3_SECRET_ACCESS_KEY"
            )
        return ObjectStoreUnavailable(
            f"S3 {operation} {key!r} in {where} failed: {type(exc).__name__}: {exc}"
        )

    @staticmethod
    def _missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")) in (
            "NoSuchKey",
            "404",
            "NotFound",
        )

    def put_file(self, key: str, source: Path) -> int:
        full = self._key(key)
        size = source.stat().st_size
        try:
            with source.open("rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=body, ContentLength=size)
        except Exception as exc:
            raise self._failure("upload of", key, exc) from exc
        return size

    def put_bytes(self, key: str, data: bytes) -> int:
        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        except Exception as exc:
            raise self._failure("upload of", key, exc) from exc
        return len(data)

    def get(self, key: str) -> bytes:
        full = self._key(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=full)
            data: bytes = answer["Body"].read()
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise self._failure("read of", key, exc) from exc
        return data

    def _keys(self, prefix: str) -> Iterator[str]:
        """Full object keys under the `/`-bounded `prefix` (a store-relative key prefix)."""
        base = (
            self._key(prefix.rstrip("/")) + "/"
            if prefix.strip("/")
            else (f"{self.prefix}/" if self.prefix else "")
        )
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])
        except Exception as exc:
            raise self._failure("listing of", prefix or "/", exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        for full in self._keys(prefix):
            key = full[strip:]
            if all(not part.startswith(".") for part in key.split("/")):
                yield key  # S3 lists in key order, as the local store does

    def delete_prefix(self, prefix: str) -> int:
        exact = self._key(prefix.rstrip("/"))
        doomed = list(self._keys(prefix))
        if not doomed:
            try:
                self.client.head_object(Bucket=self.bucket, Key=exact)
            except Exception as exc:
                if self._missing(exc):
                    return 0
                raise self._failure("lookup of", prefix, exc) from exc
            doomed = [exact]
        for start in range(0, len(doomed), S3_DELETE_BATCH):
            batch = doomed[start : start + S3_DELETE_BATCH]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except Exception as exc:
                raise self._failure("deletion under", prefix, exc) from exc
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ObjectStoreUnavailable(
                    f"S3 deletion under {prefix!r} in bucket {self.bucket!r}: {len(answer['Errors'])} "
                    f"objects not deleted (first: {first.get('Code')})"
                )
        return len(doomed)


def open_store(url: str, settings: Settings | None = None) -> ObjectStore:
    """The store behind `url`: `file:///abs/path`, or `s3://bucket/prefix` with the endpoint, region and
    credentials of `settings` (`EFIR_S3_*`; without settings, boto3's defaults)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if settings is None:
            return S3Store(parts.netloc, unquote(parts.path))
        return S3Store(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id.get_secret_value(),
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        )
    raise ObjectStoreError(f"unsupported object store URL scheme {parts.scheme!r} (file:// or s3://)")
