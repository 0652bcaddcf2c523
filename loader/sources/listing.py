"""List files under a local folder or an s3:// prefix, with sizes and modification times."""

from __future__ import annotations

import os
from collections.abc import Iterator

from loader.errors import LoaderError
from loader.s3util import is_s3, s3_client, split_s3
from loader.sources.layout import ListedFile


def list_files(source: str) -> Iterator[ListedFile]:
    """Every file below ``source`` (recursively), in a stable order per folder."""
    if is_s3(source):
        yield from _list_s3(source)
    else:
        yield from _list_local(source)


def normalize_source(source: str) -> str:
    """Absolute local path or the S3 URL without a trailing slash."""
    if is_s3(source):
        return "s3://" + source.split("://", 1)[1].rstrip("/")
    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.isdir(path):
        raise LoaderError(f"{source}: no such directory (expected a folder of CloudTrail logs)")
    return path


def _list_local(root: str) -> Iterator[ListedFile]:
    def walk_error(exc: OSError) -> None:
        raise LoaderError(f"{exc.filename}: cannot list: {exc.strerror}") from exc

    for folder, dirs, names in os.walk(root, onerror=walk_error):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # vanished between listing and stat
            yield ListedFile(path=path, size=stat.st_size, modified=stat.st_mtime)


def _list_s3(url: str) -> Iterator[ListedFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_s3(url)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    paginator = s3_client().get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                yield ListedFile(
                    path=f"s3://{bucket}/{obj['Key']}",
                    size=int(obj["Size"]),
                    modified=obj["LastModified"].timestamp(),
                )
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"{url}: cannot list S3 objects: {exc}") from exc
