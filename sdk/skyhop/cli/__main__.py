"""``python -m skyhop.cli``: the same as the ``skyhop`` command."""

from skyhop.cli import console_main

if __name__ == "__main__":
    console_main()
