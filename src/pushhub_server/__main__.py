"""`python -m pushhub_server` runs the `pushhub` command."""

from .cli import main

main()
