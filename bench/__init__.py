"""skyhop's benchmark suite: ``python3 -m bench`` (``--quick`` for a check in under a minute).

Each figure is measured next to a baseline taken in the same run (a trivial process, a
trivial server, a fork/exec), so the ratio means something on a noisy machine. The suite
prints a table, writes a JSON file (``bench/results-<timestamp>.json`` by default) and
stops every process it started. It is not part of the test command.
"""
