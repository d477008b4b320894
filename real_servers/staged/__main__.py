"""``python -m real_servers.staged``: SEDA's staged architecture."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..core.serving import announce_ready, check_root, listener, raise_fd_limit
from ..core.status import status_access
from .options import parse_args
from .server import StagedServer


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_root(args.root)
    status_access(args.status)  # a bad --status token: one message before anything starts
    raise_fd_limit()  # one descriptor per connection
    sock = listener(args.host, args.port)
    server = StagedServer(sock, args)
    server.start()
    announce_ready(sock)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
