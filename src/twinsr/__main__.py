"""``python -m twinsr`` runs the command-line interface."""

from twinsr.cli import main

if __name__ == "__main__":
    main()
