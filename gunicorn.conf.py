"""gunicorn settings, for `gunicorn -c gunicorn.conf.py wsgi:app` in a checkout: they
are defined once, in goatcounter/gunicorn_conf.py (which `goatcounter serve` uses)."""
from goatcounter.gunicorn_conf import *  # noqa: F403 (gunicorn reads every name here)
