"""Entry point: `python -m training --help`."""

from training.cli import main

raise SystemExit(main())
