"""The shell examples of GoatCounter's API documentation ("Exporting to CSV"), run as
they are written, with curl and jq, against a real gunicorn server."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess

import pytest

from goatcounter import create_app
from tests.conftest import make_site
from tests.servers import gunicorn

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")),
                                reason="needs curl and jq")

# The documentation's script header, with its two placeholders filled in.
SH_HEADER = """#!/bin/sh
token="$TOKEN"
api="$BASE/api/v0"
curl() {
    \\command curl --silent \\
        --header 'Content-Type: application/json' \\
        --header "Authorization: Bearer $token" \\
        "$@"
}
"""

# The examples, word for word.
START = """
# Start a new export, get ID from response object.
id=$(curl -X POST "$api/export" | jq .id)
"""
WAIT_AND_DOWNLOAD = """
# The export is started in the background, so we'll need to wait until it's finished.
while :; do
    sleep 1

    finished=$(curl "$api/export/$id" | jq .finished_at)
    if [ "$finished" != "null" ]; then
        # Download the export.
        curl "$api/export/$id/download" | gzip -d

        break
    fi
done
"""
NEXT_FROM_CURSOR = """
# Get cursor
start=$(curl "$api/export/$id" | jq .last_hit_id)

# Start new export starting from the cursor.
id=$(curl -X POST "$api/export" --data "{\\"start_from_hit_id\\":$start}" | jq .id)
"""


def count(*paths: str) -> str:
    """The documentation's example of sending pageviews from a backend."""
    hits = ", ".join(f'{{"path": "{p}"}}' for p in paths)
    return (f"""\ncurl -X POST  "$api/count" \\\n    --data '{{"no_sessions": true, """
            f""""hits": [{hits}]}}' >/dev/null\n""")


def test_documented_export_loop(tmp_path):
    instance = str(tmp_path / "instance")
    app = create_app({"INSTANCE": instance})
    _, token = make_site(app, cname="127.0.0.1")
    script = (SH_HEADER + count("/one", "/two") + START + WAIT_AND_DOWNLOAD
              + "echo '-- next'\n" + count("/three", "/four") + NEXT_FROM_CURSOR
              + WAIT_AND_DOWNLOAD
              + "echo '-- next'\n" + count("/five") + NEXT_FROM_CURSOR + WAIT_AND_DOWNLOAD
              + "echo '-- next'\n" + NEXT_FROM_CURSOR + WAIT_AND_DOWNLOAD)
    with gunicorn(instance, workers=2) as base:
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=90,
                              env={**os.environ, "TOKEN": token, "BASE": base})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    parts = done.stdout.split("-- next\n")
    exported = [[row[0] for row in csv.reader(io.StringIO(part))] for part in parts]
    header = ["2Path", "Title", "Event", "UserAgent", "Browser", "System", "Session", "Bot",
              "Referrer", "Referrer scheme", "Screen size", "Location", "FirstVisit", "Date"]
    for part in parts:
        assert next(csv.reader(io.StringIO(part))) == header
    assert [paths[1:] for paths in exported] == [["/one", "/two"], ["/three", "/four"],
                                                  ["/five"], []]
