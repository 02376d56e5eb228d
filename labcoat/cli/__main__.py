"""`python -m labcoat.cli`: the same as the `labcoat` command."""

from labcoat.cli import main

main()
