"""The ``exfilguard`` command line: argument parsing and printing over the flows."""
