import sys

from ray_scribe.cli import main

sys.exit(main())
