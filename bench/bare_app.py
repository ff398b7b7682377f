"""The baseline of bench/ingest.py: a bare Flask app that answers /count with the same
GIF and headers as the real endpoint, and does nothing else."""
from __future__ import annotations

from flask import Flask, Response

from goatcounter.public.pixel import GIF, GIF_HEADERS

app = Flask(__name__)


@app.route("/count", methods=["GET", "POST"])
def count() -> Response:
    return Response(GIF, headers=GIF_HEADERS)
