"""`python -m` runs the same commands as the console script (see cli.py)."""

from .cli import main

raise SystemExit(main())
