"""`python -m service.worker`: see service.worker.main."""

from .main import main

main()
