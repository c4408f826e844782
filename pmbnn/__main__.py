"""python -m pmbnn"""

import sys

from pmbnn.cli import main

sys.exit(main())
