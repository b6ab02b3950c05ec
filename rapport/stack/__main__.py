"""``python -m rapport.stack up|down|status|env|...``"""

import sys

from rapport.stack import main

sys.exit(main())
