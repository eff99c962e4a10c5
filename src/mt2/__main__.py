import sys

from mt2.cli import main

sys.exit(main())
