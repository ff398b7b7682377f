"""The counting path: a hit from the request to the database (the pipeline, the
spool of pixel pageviews, sessions, the hit rows and their aggregates)."""
