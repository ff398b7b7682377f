"""WSGI entry point: `gunicorn wsgi:app`."""
from goatcounter import create_app

app = create_app()
