"""Tor exit lists: every real list parses with the count it holds, snapshots are told apart
in time, and lists load from folders, tarballs, URLs and S3, refreshing when they change."""

from __future__ import annotations

import datetime as dt
import http.server
import re
import tarfile
import threading

import boto3
import numpy as np
import pandas as pd
import pytest

from loader.errors import UdfError
from tests.corpus import corpus_dir
from udfs.tor import TorExitList, parse_exit_list
from udfs.vectorized import epoch_seconds, tor_exit_at

UTC = dt.timezone.utc


def _independent_count(text: str) -> tuple[int, set[str]]:
    exit_lines = re.findall(r"^ExitAddress (\S+) ", text, re.M)
    if exit_lines:
        return len(exit_lines), set(exit_lines)
    ips = [line.strip() for line in text.splitlines() if line.strip()]
    return len(ips), set(ips)


def test_every_corpus_list_parses_with_the_addresses_it_holds():
    files = sorted(p for p in corpus_dir("tor").iterdir() if p.is_file())
    assert len(files) == 8
    kinds = set()
    for path in files:
        text = path.read_text()
        parsed = parse_exit_list(text, str(path), None)
        lines, addresses = _independent_count(text)
        snapshot = parsed.snapshot
        assert parsed.problems == [], path
        assert snapshot.address_lines == lines and snapshot.addresses == addresses, path
        if snapshot.format == "exit-addresses":
            assert snapshot.exit_nodes == len(re.findall(r"^ExitNode ", text, re.M))
        kinds.add(snapshot.format)
    assert kinds == {"exit-addresses", "bulk"}


def test_snapshot_times_come_from_header_entries_or_name():
    tor = corpus_dir("tor")

    def when(name):
        return parse_exit_list((tor / name).read_text(), name, None).snapshot.time

    # CollecTor's Downloaded header
    assert when("collector-exit-list_2018-11-01-00-02-01.tordnsel") == dt.datetime(
        2018, 11, 1, 0, 2, 1, tzinfo=UTC
    )
    # no header: the newest ExitAddress observation
    assert when("exit-addresses_2018-10-11.txt").date() == dt.date(2018, 10, 11)
    assert when("exit-addresses_2018-10-11.txt").hour > 0
    # bulk list: the date in its name
    assert when("torbulkexitlist_2023-10-14.txt") == dt.datetime(2023, 10, 14, tzinfo=UTC)


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_is_tor_exit_at_distinguishes_snapshots():
    tor = corpus_dir("tor")
    exits = TorExitList(str(tor))
    exits.refresh()
    index = exits.index()
    first = {s.origin: s for s in exits.snapshots}
    nov1 = first[str(tor / "collector-exit-list_2018-11-01-00-02-01.tordnsel")].addresses
    nov2 = first[str(tor / "collector-exit-list_2018-11-02-01-02-01.tordnsel")].addresses
    newest = exits.snapshots[-1].addresses
    gone = sorted(nov1 - nov2 - newest)[0]  # an exit on Nov 1 2018, no longer on Nov 2
    assert index.is_exit_at(gone, _ts("2018-10-31T06:00:00")) is True
    assert index.is_exit_at(gone, _ts("2018-11-03T01:00:00")) is False
    assert index.is_exit_at(gone, _ts("2020-06-01T00:00:00")) is None  # no list that close
    assert index.is_exit(gone) is False  # not in the newest list
    current = sorted(newest)[0]
    assert index.is_exit(current) is True
    assert index.is_exit("AWS Internal") is False and index.is_exit(None) is None
    # the vectorized path agrees with the scalar one, row by row
    ips = pd.Series([gone, gone, gone, current, None, "10.0.0.1", f"{gone}, 10.0.0.2"])
    times = pd.Series(
        pd.to_datetime(
            [
                "2018-10-31 06:00",
                "2018-11-03 01:00",
                "2020-06-01 00:00",
                "2023-10-14 08:00",
                "2023-10-14 00:00",
                "2018-11-01 00:00",
                None,
            ]
        )
    )
    seconds = epoch_seconds(times, "UTC")
    vector = tor_exit_at(index, ips, seconds).tolist()
    scalar = [
        index.is_exit_at(ip, None if np.isnan(s) else s) for ip, s in zip(ips, seconds, strict=True)
    ]
    assert vector == scalar == [True, False, None, True, None, False, None]


def test_bad_lines_and_files_are_reported_and_the_rest_loads(tmp_path):
    (tmp_path / "torbulkexitlist_2024-03-31.txt").write_text(
        "# exit list\n171.25.193.25\nnot-an-ip\n185.220.101.1\n"
    )
    (tmp_path / "empty.txt").write_text("hello\n")
    with tarfile.open(tmp_path / "exit-list-2024-03.tar.xz", "w:xz") as archive:
        member = corpus_dir("tor") / "metrics-lib_exit-list_2017-07-17-17-02-00_cropped.tordnsel"
        archive.add(member, arcname="exit-list-2017-07/17/2017-07-17-17-02-00")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really")
    exits = TorExitList(str(tmp_path))
    assert exits.refresh() is True
    assert [s.format for s in exits.snapshots] == ["exit-addresses", "bulk"]
    assert exits.snapshots[-1].addresses == {"171.25.193.25", "185.220.101.1"}
    problems = "\n".join(exits.problems)
    assert "torbulkexitlist_2024-03-31.txt:3: not an IP address: 'not-an-ip'" in problems
    assert "empty.txt: no exit addresses found" in problems
    assert "broken.tar.gz: damaged archive, skipped" in problems
    assert exits.refresh() is False  # nothing changed on disk


def test_a_source_without_any_list_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(UdfError, match=r"--tor-exit-list .*: no usable exit list"):
        TorExitList(str(tmp_path)).refresh()
    with pytest.raises(UdfError, match="no such file or folder"):
        TorExitList(str(tmp_path / "missing")).refresh()


class _ExitListServer(http.server.BaseHTTPRequestHandler):
    body = b"171.25.193.25\n"
    etag = '"v1"'
    modified = "Sun, 31 Mar 2024 12:00:00 GMT"
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).requests.append(self.headers.get("If-None-Match"))
        if self.headers.get("If-None-Match") == self.etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", self.etag)
        self.send_header("Last-Modified", self.modified)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_url_source_refreshes_with_conditional_requests():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ExitListServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/torbulkexitlist"
        exits = TorExitList(url)
        assert exits.refresh() is True
        assert exits.snapshots[0].time == dt.datetime(2024, 3, 31, 12, tzinfo=UTC)
        assert exits.refresh() is False  # 304 Not Modified
        _ExitListServer.body, _ExitListServer.etag = b"185.220.101.1\n", '"v2"'
        _ExitListServer.modified = "Sun, 31 Mar 2024 13:00:00 GMT"
        assert exits.refresh() is True  # a new list: kept beside the old one, for is_exit_at
        index = exits.index()
        assert len(index) == 2
        assert index.is_exit("185.220.101.1") and not index.is_exit("171.25.193.25")
    finally:
        server.shutdown()
    assert _ExitListServer.requests[:2] == [None, '"v1"']


def test_s3_source_reads_every_object_under_a_prefix(moto_server):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tor-lists")
    tor = corpus_dir("tor")
    for name in ("torbulkexitlist_2022-08-17.txt", "torbulkexitlist_2023-10-14.txt"):
        s3.put_object(Bucket="tor-lists", Key=f"exit/{name}", Body=(tor / name).read_bytes())
    exits = TorExitList("s3://tor-lists/exit/")
    assert exits.refresh() is True
    assert [len(s.addresses) for s in exits.snapshots] == [1396, 1305]
    assert exits.refresh() is False
    with pytest.raises(UdfError, match="no object at this S3 location"):
        TorExitList("s3://tor-lists/nothing/").refresh()
