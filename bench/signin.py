"""Sign-in timing: how long POST /user/requestlogin takes for a wrong password, an
unknown email and a user without a password, each as a ratio to the right password
(the baseline, measured in the same process), through the Flask test client.

    .venv/bin/python bench/signin.py [--runs 15]

The three wrong answers should cost what the right one does (one scrypt hash each), so
that the time of a reply doesn't tell whether an address has an account. The runs are
interleaved, so a machine that gets busier part-way slows every kind alike.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from goatcounter import create_app
from goatcounter.accounts import sites, users
from goatcounter.storage import db

HOST = "stats.example.com"
PASSWORD = "the right password"
CASES = {
    "right password": ("admin@example.com", PASSWORD),
    "wrong password": ("admin@example.com", "a wrong password"),
    "unknown email": ("nobody@example.com", PASSWORD),
    "no password set": ("nopassword@example.com", PASSWORD),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as inst:
        app = create_app({"INSTANCE": inst, "RATELIMIT": "login:none",
                          "COUNT_IN_BACKGROUND": False})
        with app.app_context():
            def setup(conn):
                site = sites.create(conn, cname=HOST)
                users.create(conn, site_id=site["id"], email="admin@example.com",
                             password=PASSWORD)
                users.create(conn, site_id=site["id"], email="nopassword@example.com")
            db.write(setup)
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.runs):
            for name, (email, password) in CASES.items():
                client = app.test_client()
                form = client.get("/user/new", headers={"Host": HOST}).get_data(as_text=True)
                token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
                start = time.perf_counter()
                resp = client.post("/user/requestlogin", headers={"Host": HOST},
                                   data={"csrf": token, "email": email, "password": password})
                times[name].append(time.perf_counter() - start)
                assert resp.status_code == (303 if name == "right password" else 400), name
        base = statistics.median(times["right password"])
        for name, got in times.items():
            median = statistics.median(got)
            print(f"{name:16} median {median * 1000:7.1f} ms   ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
