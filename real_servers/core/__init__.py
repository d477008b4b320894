"""The HTTP core both real servers share, so a measured difference is the architecture.

- :mod:`.parser`   sans-IO request parser (bytes in, :class:`Request` or :class:`ParseError` out)
- :mod:`.docroot`  URL path -> file, never outside the root; in-memory cache of small files
- :mod:`.response` response heads and bodies for a request
- :mod:`.clock`    the ``Date`` header, rendered once per second
- :mod:`.mime`     content types
- :mod:`.status`   the ``/server-status`` counters (getrusage keeps exited threads' counts)
                   and who may read them (``--status``)
- :mod:`.faults`   reporting a failure that costs one request (a 500 or a cut response)
- :mod:`.serving`  what every server does alike: options, listener, ``READY``
- :mod:`.board`    counters in shared memory, for the multi-process servers (state-group, prefork)
- :mod:`.cputime`  a call timed with its thread's CPU clock (the servers' ``--state-cpu``)
"""

from .docroot import DocumentRoot
from .parser import ParseError, Request, RequestParser
from .response import Responder, Response

__all__ = [
    "DocumentRoot",
    "ParseError",
    "Request",
    "RequestParser",
    "Responder",
    "Response",
]
