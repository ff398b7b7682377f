"""Reading statistics: every answer comes from the aggregate tables that storing a hit
keeps current (see counting/aggregates.py), never from the hits themselves.

One concern per module: `query` (query parameters), `ranges` (times and zones),
`filters` (which paths), `days` (day entries), `path_list`, `totals`, `hitlist`, `refs`
and `dims` (the endpoints' queries), `render` (the replies' JSON text).
"""
