"""``python -m feedline`` runs the CLI."""

from feedline.cli import main

main()
