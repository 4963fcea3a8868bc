"""The monorepo's build machinery, one job per module; ``scripts/workspace.py`` is its CLI.

Only the standard library is imported at start-up: the tools env is built by these modules
running on the bare interpreter the user picked.
"""
