"""`python -m goatcounter` is the goatcounter command."""
from .cli import main

main()
