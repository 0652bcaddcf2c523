"""Where enrichment data comes from: a local file or folder, an http(s) URL, or s3://.

GeoIP databases from S3 are fetched once into a local cache (keyed by the object's ETag) and
then shipped to executors by Spark. Tor exit lists are read on the driver, from any of the
three, and each read says whether anything changed since the last one, so a long-running
session can refresh cheaply.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from loader.errors import UdfError

ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")
HTTP_TIMEOUT = 30


@dataclass(frozen=True)
class Document:
    """One text document (an exit list) with where it came from and when it was made."""

    origin: str
    text: str
    modified: dt.datetime | None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "timely-security-analytics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def local_copy(source: str, what: str) -> str:
    """A local path for ``source``: itself, or a cached download of an s3:// object."""
    from loader.s3util import is_s3

    if is_s3(source):
        return _s3_download(source, what)
    if is_url(source):
        raise UdfError(f"{what} {source}: give a local path or s3:// URL for a database")
    if not os.path.isfile(source):
        raise UdfError(f"{what} {source}: file not found")
    return os.path.abspath(source)


def _s3_download(url: str, what: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from loader.s3util import s3_client, split_s3

    bucket, key = split_s3(url)
    client = s3_client()
    try:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        target = cache_dir() / f"{etag[:16]}-{os.path.basename(key)}"
        if not target.exists():
            partial = target.with_suffix(".part")
            client.download_file(bucket, key, str(partial))
            partial.replace(target)  # a crash mid-download never leaves a truncated cache
    except (BotoCoreError, ClientError) as exc:
        raise UdfError(f"{what} {url}: cannot fetch from S3: {exc}") from exc
    return str(target)


def content_name(path: str) -> str:
    """A name for Spark's file distribution that differs when the content differs, so two
    databases with one base name (or a replaced file) never collide on the executors."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{digest.hexdigest()[:12]}-{os.path.basename(path)}"


def staged_copy(path: str) -> str:
    """``path`` under its :func:`content_name` in the cache folder (a hard link where the file
    system allows, else a copy made once). Spark names distributed files by their resolved
    base name, so a symbolic link would not do."""
    target = cache_dir() / "staged" / content_name(path)
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        return str(target)
    partial = target.with_name(target.name + f".{os.getpid()}.part")
    try:
        os.link(path, partial)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(path, partial)
    partial.replace(target)
    return str(target)


class DocumentSource:
    """Reads every exit list under a source; ``read()`` returns None when nothing changed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []  # unreadable files, kept aside while the rest loads
        self._version: object = None

    def read(self) -> list[Document] | None:
        from loader.s3util import is_s3

        if is_url(self.source):
            return self._read_url()
        if is_s3(self.source):
            return self._read_s3()
        return self._read_local()

    def _changed(self, version: object) -> bool:
        if version == self._version:
            return False
        self._version = version
        return True

    def _read_local(self) -> list[Document] | None:
        root = Path(self.source)
        if not root.exists():
            raise UdfError(f"--tor-exit-list {self.source}: no such file or folder")
        files = (
            sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
            if root.is_dir()
            else [root]
        )
        version = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files]
        if not self._changed(version):
            return None
        documents: list[Document] = []
        for path in files:
            modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
            if path.name.endswith(ARCHIVES):
                documents += _archive_members(path, modified, self.problems)
            else:
                documents.append(Document(str(path), _decode(path.read_bytes()), modified))
        return documents

    def _read_url(self) -> list[Document] | None:
        request = urllib.request.Request(self.source, headers={"User-Agent": "tsa-tor-refresh"})
        if isinstance(self._version, tuple):
            etag, last_modified = self._version
            if etag:
                request.add_header("If-None-Match", etag)
            if last_modified:
                request.add_header("If-Modified-Since", last_modified)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                body = response.read()
                etag, last_modified = (
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                )
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise UdfError(f"--tor-exit-list {self.source}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise UdfError(f"--tor-exit-list {self.source}: cannot download: {exc}") from exc
        version = (etag, last_modified) if etag or last_modified else hashlib.sha1(body).digest()
        if not self._changed(version):
            return None
        modified = parsedate_to_datetime(last_modified) if last_modified else None
        if modified is None:
            modified = dt.datetime.now(dt.timezone.utc)
        return [Document(self.source, _decode(body), modified)]

    def _read_s3(self) -> list[Document] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        from loader.s3util import s3_client, split_s3

        bucket, prefix = split_s3(self.source)
        client = s3_client()
        try:
            objects = [
                item
                for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix
                )
                for item in page.get("Contents", [])
                if not item["Key"].endswith("/")
            ]
            if not objects:
                raise UdfError(f"--tor-exit-list {self.source}: no object at this S3 location")
            version = sorted((o["Key"], o["ETag"]) for o in objects)
            if not self._changed(version):
                return None
            documents: list[Document] = []
            for item in sorted(objects, key=lambda o: o["Key"]):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                documents.append(
                    Document(f"s3://{bucket}/{item['Key']}", _decode(body), item["LastModified"])
                )
            return documents
        except (BotoCoreError, ClientError) as exc:
            raise UdfError(f"--tor-exit-list {self.source}: cannot read from S3: {exc}") from exc


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _archive_members(path: Path, modified: dt.datetime, problems: list[str]) -> list[Document]:
    """Every file in a CollecTor tarball (e.g. exit-list-2018-11.tar.xz) as a document."""
    documents: list[Document] = []
    try:
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    text = _decode(handle.read())
                    documents.append(Document(f"{path}!{member.name}", text, modified))
    except (tarfile.TarError, OSError, EOFError) as exc:
        problems.append(f"{path}: damaged archive, skipped ({exc})")
    return documents


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")
