"""Apache 1.3's prefork architecture: a fixed set of single-threaded worker processes.

- :mod:`.master` opens the listening socket, forks ``--workers`` processes, then only reaps
  and respawns them (and on SIGTERM stops them and exits 0)
- :mod:`.worker` one process: block in ``accept()`` on the shared listener, serve that
  connection with blocking calls until it closes (keep-alive requests included), accept again
- :mod:`.status` the ``/server-status`` document, read from the shared-memory board
  (:mod:`real_servers.core.board`) that every process writes its counters to

Each worker serves one connection at a time with the thread-per-connection server's blocking
loop (:func:`real_servers.threaded.connection.serve_connection`), so the two differ only in
processes against threads: no interpreter lock is shared between workers.
"""
