"""ethos-kws: keyword spotting on Arm Ethos-U NPUs.

The Python API mirrors the command line; see README.md.
"""

__version__ = "0.1.0"
