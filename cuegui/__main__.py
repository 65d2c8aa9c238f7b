"""`python -m cuegui`."""

from cuegui.main import main

main()
