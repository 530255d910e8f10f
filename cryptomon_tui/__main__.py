import sys

from cryptomon_tui.cli import main

sys.exit(main())
