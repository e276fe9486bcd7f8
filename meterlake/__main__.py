"""`python -m meterlake` is the `meterlake` command."""

from .cli import main

main()
