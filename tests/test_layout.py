"""Fast tier: the CloudTrail key layout."""

from __future__ import annotations

import pytest

from loader.sources.layout import LayoutMismatch, place

NAME = "123456789012_CloudTrail_us-east-1_20240102T0305Z_abcdefABCDEF0123.json.gz"


@pytest.mark.parametrize(
    "prefix",
    ["", "/data/", "s3://bucket/", "s3://bucket/some/prefix/", "relative/dir/"],
)
def test_standard_layout_at_any_prefix(prefix):
    placed = place(f"{prefix}AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/{NAME}")
    assert placed.kind == "cloudtrail"
    assert placed.partition == ("123456789012", "us-east-1", "2024-01-02")
    assert placed.org_id is None
    assert placed.directory == f"{prefix}AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02"


def test_organization_trail():
    placed = place(
        f"s3://b/AWSLogs/o-exampleorgid/123456789012/CloudTrail/eu-west-1/2023/12/31/{NAME}"
    )
    assert placed.org_id == "o-exampleorgid"
    assert placed.partition == ("123456789012", "eu-west-1", "2023-12-31")


def test_insight_and_digest_folders():
    insight = place(f"/x/AWSLogs/123456789012/CloudTrail-Insight/us-east-1/2024/01/02/{NAME}")
    digest = place(f"/x/AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/02/{NAME}")
    assert (insight.kind, digest.kind) == ("insight", "digest")


def test_uncompressed_json_is_accepted():
    assert place("/x/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/a.json").kind == (
        "cloudtrail"
    )


@pytest.mark.parametrize(
    "path, message",
    [
        ("/x/AWSLogs/123456789012/CloudTrail/us-east-1/2024/02/30/a.json.gz", "invalid date"),
        ("/x/AWSLogs/123456789012/CloudTrail/us-east-1/2024/02/a.json.gz", "not in the"),
        ("/x/AWSLogs/123456789012/CloudTrail/us-east-1/2024/02/01/a.csv", "not a .json.gz"),
    ],
)
def test_broken_layout_is_reported(path, message):
    with pytest.raises(LayoutMismatch, match=message):
        place(path)


@pytest.mark.parametrize(
    "path",
    [
        "/x/README.md",
        "/x/AWSLogs/123456789012/elasticloadbalancing/us-east-1/2024/01/02/a.log.gz",
        "/x/AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/02/notes.txt",
        "/x/AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/.hidden",
    ],
)
def test_other_files_are_not_cloudtrail(path):
    assert place(path) is None
