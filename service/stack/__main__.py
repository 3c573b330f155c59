"""`python -m service.stack`: see service.stack.supervisor."""

from .supervisor import main

main()
