"""`python -m bptt`."""
import sys

from .cli import main

sys.exit(main())
