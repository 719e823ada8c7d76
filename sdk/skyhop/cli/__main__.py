"""``python -m skyhop.cli``: the same as the ``skyhop`` command."""

from skyhop.cli import main

if __name__ == "__main__":
    main()
