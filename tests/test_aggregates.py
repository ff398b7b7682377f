"""The aggregate tables (counting/aggregates.py): a batch counts as its hits would one at
a time, whatever mix of fields, first visits and sessions it holds."""
from __future__ import annotations

import random

from goatcounter.counting import aggregates
from goatcounter.counting.pipeline.process import Hit
from goatcounter.storage import db
from tests.conftest import make_site

DAY = 86400
# 2026-11-30 (a month's last day: later visits of a session fall in the next month).
START = 1_796_083_200


def _hits(rng: random.Random, n: int) -> tuple[list[Hit], set[bytes]]:
    """Hits over three days with every field varied; most sessions new (`fresh`), some
    seen again on later days."""
    returning = [rng.randbytes(16) for _ in range(12)]
    hits, fresh = [], set()
    for _ in range(n):
        h = Hit(path="/p", title="", event=rng.random() < 0.1, ref=rng.choice(["", "x.org"]),
                ref_scheme="", campaign="", width=rng.choice([0, 390, 1280, 1920]), bot=0,
                browser=None, system=None, location=rng.choice(["", "US", "NL", "FR-75"]),
                language=rng.choice(["", "en", "nl"]), user_agent="", session_key=None,
                created_at=START + rng.randrange(3 * DAY))
        h.path_id, h.ref_id = rng.randrange(1, 6), rng.choice([1, 1, 2, 3])
        h.browser_id = rng.choice([None, 1, 2])
        h.system_id = rng.choice([None, 1, 2, 3])
        h.campaign_id = rng.choice([None, None, None, 1, 2])
        h.first_visit = rng.random() < 0.8
        pick = rng.random()
        if pick < 0.1:
            h.session = None
        elif pick < 0.4:
            h.session = rng.choice(returning)
        else:
            h.session = rng.randbytes(16)
            fresh.add(h.session)
        hits.append(h)
    hits.sort(key=lambda h: h.created_at)
    return hits, fresh


def _tables(conn, site_id: int) -> dict[str, list[tuple]]:
    out = {}
    for table in [*aggregates.TABLES, "path_months", "visitor_days", "visitor_prevs"]:
        rows = conn.execute(f"SELECT * FROM {table} WHERE site_id = :s", {"s": site_id})
        out[table] = sorted(tuple(r)[1:] for r in rows)  # without site_id
    return out


def test_a_batch_counts_as_its_hits_one_at_a_time(app):
    batch_site, _ = make_site(app, "batch.example.com")
    single_site, _ = make_site(app, "single.example.com", email="b@example.com")
    hits, fresh = _hits(random.Random(7), 400)
    with app.app_context():
        # Some of the returning sessions were seen before these hits.
        earlier = [h for h in _hits(random.Random(8), 40)[0] if h.session]
        for site in (batch_site, single_site):
            db.write(lambda c, s=site: aggregates.add(c, s["id"], earlier))
        db.write(lambda c: aggregates.add(c, batch_site["id"], hits, fresh))
        made: set[bytes] = set()
        for h in hits:
            new = {h.session} if h.session in fresh and h.session not in made else set()
            made |= new
            db.write(lambda c, h=h, new=new: aggregates.add(c, single_site["id"], [h], new))
        conn = db.get_db()
        batch, single = _tables(conn, batch_site["id"]), _tables(conn, single_site["id"])
    assert batch == single
    # Every table got rows: the mix reached each of them.
    assert all(batch.values()), [t for t, rows in batch.items() if not rows]
    visits = sum(h.first_visit for h in hits) + sum(h.first_visit for h in earlier)
    assert sum(r[-1] for r in batch["path_days"]) == visits
