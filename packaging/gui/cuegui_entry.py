"""The bundle's entry point: the same `main` as the installed `cuegui` console script."""

from cuegui.main import main

if __name__ == "__main__":
    main()
