"""``python -m testbed`` runs the CLI."""

from testbed.cli import main

if __name__ == "__main__":
    main()
