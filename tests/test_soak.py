"""The soak test, shorter: bench/soak.py with a worker killed halfway through, a spool
file truncated, the spool's disk full for a moment and a backup from another PID
namespace. On PostgreSQL the faults of the SQLite file give way to a batch's database
connection ended inside its write: its client gets a 503, and the batch is stored
wholly or not at all."""
from __future__ import annotations

import pytest

from bench import soak
from tests import engines


@pytest.mark.slow
def test_nothing_lost_under_load_and_faults(tmp_path):
    result = soak.run(seconds=12, clients=8, workers=4, instance=str(tmp_path))
    print(result.table())
    assert result.killed is not None
    for kind, tally in result.tallies.items():
        assert tally.ok > 20, (kind, result.table())
    assert result.lost == 0, result.table()
    assert result.duplicated == 0 and result.unknown == 0, result.table()
    # The one batch whose connection was ended (PostgreSQL) is told so with a 503.
    assert result.server_errors <= result.connections_killed, result.table()
    assert result.locked <= result.connections_killed, result.table()
    assert result.aggregates_ok and result.pending_left == 0, result.table()
    assert result.tracebacks == 0, result.table()
    if engines.ENGINE == "postgresql":
        assert result.connections_killed == 1 and result.torn == 0, result.table()
        assert result.ok
        return
    faults = result.faults
    assert faults.cut and faults.backup_ok, result.table()
    if faults.disk_full:
        assert result.tallies["/count pixels"].refused_full > 0, result.table()
        assert result.refused_stored == 0, result.table()
    assert result.ok
