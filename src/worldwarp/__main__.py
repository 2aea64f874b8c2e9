import sys

from worldwarp.cli import main

sys.exit(main())
