"""``python -m graphdyn``: the ``graphdyn`` command line."""

from graphdyn.cli.app import main

if __name__ == "__main__":
    main()
