"""gunicorn settings for running the server behind a reverse proxy on the same machine:
the one definition that `goatcounter serve` (as `-c python:goatcounter.gunicorn_conf`),
`gunicorn -c gunicorn.conf.py wsgi:app` in a checkout (that file only imports this
one) and deploy/goatcounter.service all use. Part of the package, so that an installed
server has it too.

Options given on the command line (or in GUNICORN_CMD_ARGS) win over these, e.g.
`--bind 127.0.0.1:9000`. See deploy/README.md for the whole set-up.
"""
from __future__ import annotations

import multiprocessing
import os

# Only the proxy on this machine talks to gunicorn; it is never exposed itself.
bind = "127.0.0.1:8081"

# Sync workers: every request is short, and SQLite takes one writer at a time anyway,
# so more processes (not threads or greenlets) is what keeps requests flowing while one
# of them waits for the write lock. WEB_CONCURRENCY overrides the count, as usual for
# gunicorn.
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", 0)) or multiprocessing.cpu_count() * 2 + 1

# A writer may wait for the database's lock for up to about 45 seconds (db.py: the
# busy timeout plus the retries) before it answers 503, and an export is written while
# its request waits (about 6 seconds per million hits). The worker timeout must be
# longer than both, or gunicorn kills a worker that was about to answer.
timeout = 300
# On a restart, requests in progress get this long to finish.
graceful_timeout = 30
# nginx talks HTTP/1.0 to upstreams without keep-alive; this is for anything else.
keepalive = 2

# The app is built in each worker: database connections must not be shared across fork.
preload_app = False

# No control socket in the home directory (newer gunicorns open one): nothing here uses
# it, and systemd's signals (HUP to reload, TERM to stop) do the same job.
control_socket_disable = True

# Only the local proxy may say, with X-Forwarded-Proto, that a request came over
# HTTPS. Which client address the app believes is GOATCOUNTER_TRUSTED_PROXIES's
# business, not gunicorn's.
forwarded_allow_ips = "127.0.0.1,::1"

# Access log to stdout (the journal under systemd). The request line is logged without
# its query string: on /count that holds the pages and referrers of visitors.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = "info"

# /count carries a pageview's path, title and referrer (up to 2 KiB each) in its query
# string: gunicorn's default request line of 4 KiB is too short for that. 8190 is the
# most gunicorn allows, and what nginx passes by default (large_client_header_buffers).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
