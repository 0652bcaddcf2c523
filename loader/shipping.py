"""Ship this project's Python code to a cluster's executors, so nobody copies it to workers.

Executors run the GeoIP/Tor functions (``udfs``), unpickle the Tor index broadcast, and read
S3 objects for the SQS source (``loader``). On ``local[*]`` they are the driver's own Python;
on a cluster (standalone, YARN, Kubernetes) the packages go out as one zip with
``SparkContext.addPyFile``. The GeoIP databases go out with ``addFile`` and the Tor lists as a
broadcast (``udfs.spark``); rule files are read by the driver, which sends executors plans.
Third-party libraries (pandas and pyarrow, as any pandas UDF needs; geoip2/maxminddb; boto3
for S3 and SQS) must be installed on the workers, as for any PySpark job.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PACKAGES = ("loader", "udfs")
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def is_local(master: str) -> bool:
    return master.startswith("local")


def package_files() -> list[tuple[Path, str]]:
    """(file, name in the zip) for every file of the packages, in a stable order."""
    import loader
    import udfs

    files = []
    for module in (loader, udfs):
        root = Path(module.__file__).parent
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root.parent)
            if path.is_file() and not _SKIPPED_DIRS & set(relative.parts):
                if not path.name.endswith(_SKIPPED_SUFFIXES):
                    files.append((path, relative.as_posix()))
    return files


def build_package_zip(out_dir: str | None = None) -> Path:
    """Zip the packages into ``tsa-packages-<content hash>.zip``: the same code gives the same
    name, so a restarted driver ships nothing new, and changed code never hides behind a
    stale copy on an executor."""
    files = package_files()
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode())
        digest.update(path.read_bytes())
    folder = Path(out_dir or tempfile.gettempdir())
    target = folder / f"tsa-packages-{digest.hexdigest()[:16]}.zip"
    if not target.exists():
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, name in files:
                # a fixed timestamp: the zip's bytes depend on the code only
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        os.replace(partial, target)
    return target


def ship_packages(spark: SparkSession) -> Path | None:
    """On a cluster, send the packages to every executor (now and added later). Returns the
    zip shipped, or None on local mode where executors share the driver's Python."""
    context = spark.sparkContext
    if is_local(context.master):
        return None
    archive = build_package_zip()
    context.addPyFile(str(archive))  # the same path again is ignored
    return archive
