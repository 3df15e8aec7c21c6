"""`python -m t2t_vit` runs the `t2t-vit` command."""

import sys

from .cli import main

sys.exit(main())
