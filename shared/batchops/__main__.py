"""`python -m batchops` runs the CLI."""

from batchops.cli import main

raise SystemExit(main())
