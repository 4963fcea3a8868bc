"""The build machinery, one job per module; its command line is scripts/workspace.py."""
