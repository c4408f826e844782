"""python -m pmbnn"""

from pmbnn.cli import entry_point

entry_point()
