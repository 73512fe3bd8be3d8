"""``python -m negtransfer`` runs the command line."""

from negtransfer.cli import main

main()
