"""python -m gradserve_client: the gradserve command."""

from .cli import main

raise SystemExit(main())
