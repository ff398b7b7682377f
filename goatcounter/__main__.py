"""`python -m goatcounter` is the goatcounter command."""
from goatcounter.cli import main

main()
