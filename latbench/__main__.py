"""`python -m latbench` runs the command line."""

from latbench.cli import main

main()
