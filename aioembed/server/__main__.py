"""``python -m aioembed.server``: the same as ``aioembed serve``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
