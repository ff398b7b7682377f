"""Reading statistics: every answer comes from the aggregate tables that storing a hit
keeps current (see aggregates.py), never from the hits themselves.

One concern per module: `args` (query parameters), `ranges` (times and zones),
`filters` (which paths), `days` (day entries), `totals`, `hitlist`, `refs` and `dims`
(the endpoints' queries), `render` (the replies' JSON text).
"""
