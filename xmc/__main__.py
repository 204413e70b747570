"""``python -m xmc`` runs the command line (also under torchrun)."""
from xmc.cli.main import main

main()
