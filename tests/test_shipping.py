"""The zip of this project's packages that executors on a cluster import (no JVM)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from loader.shipping import build_package_zip, is_local


def test_the_zip_holds_the_packages_and_is_named_by_content(tmp_path):
    first = build_package_zip(str(tmp_path))
    assert build_package_zip(str(tmp_path)) == first  # same code, same zip, not rebuilt
    names = zipfile.ZipFile(first).namelist()
    for module in ("udfs/spark.py", "udfs/geoip.py", "udfs/tor.py", "loader/errors.py",
                   "loader/stream/sqs_source.py", "loader/rules/spark_functions.txt"):  # fmt: skip
        assert module in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    # executors import from it, with no site-packages and no editable install
    probe = (
        f"import sys; sys.path.insert(0, {str(first)!r}); import udfs.tor; print(udfs.tor.__file__)"
    )
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True)
    assert proc.stdout.strip() == f"{first}/udfs/tor.py", proc.stderr


def test_only_a_cluster_master_gets_the_zip():
    assert is_local("local[*]") and is_local("local-cluster[2,1,1024]")
    assert not is_local("spark://127.0.0.1:7077") and not is_local("yarn")
    assert not is_local("k8s://https://kubernetes.default.svc")
