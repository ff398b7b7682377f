"""WSGI entry point inside the package, for `goatcounter serve`."""
from . import create_app

app = create_app()
