"""``python -m dataward`` runs the CLI."""

from dataward.cli.app import main

main()
