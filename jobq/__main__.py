"""`python -m jobq` runs the CLI."""

from jobq.cli import main

main()
