"""``python -m real_servers.stategroup``: kHTTPd's state-group architecture."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .config import parse_args
from .master import Master


def main(argv: Sequence[str] | None = None) -> int:
    return Master(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
