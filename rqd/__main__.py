"""`python -m rqd ...`"""

from rqd.main import main

if __name__ == "__main__":
    main()
