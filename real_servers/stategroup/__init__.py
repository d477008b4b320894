"""kHTTPd's new architecture (>= 0.1.3): one worker per CPU servicing requests grouped by state.

- :mod:`.master`     starts one worker process per CPU, pinned, restarts the dead, drains
- :mod:`.worker`     the loop (kHTTPd's main.c): every state in turn; sleep in epoll only when
                     a whole pass moved nothing, else poll with timeout 0
- :mod:`.states`     one module per state: accept, wait_headers, send_data, userspace, logging
- :mod:`.connection` a connection and its current request; the upstream side of a relay
- :mod:`.status`     the ``/server-status`` document, read from the shared-memory board of
                     :mod:`real_servers.core.board`

A worker is a process rather than a thread because of Python's GIL: it is the honest "one
thread per CPU".
"""
