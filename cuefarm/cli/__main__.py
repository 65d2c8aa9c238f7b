"""`python -m cuefarm.cli`: the same as the `cuefarm` console script."""

from cuefarm.cli import main

main()
