"""SEDA's staged architecture (Welsh, Culler and Brewer, SOSP 2001): a thread pool per
lifecycle state and a queue between each pair of states.

- :mod:`.stages` the four stages' threads: ``accept`` (blocking accept), ``wait_headers``
  (epoll over the connections waiting for a request; its epoll set is its queue), ``send_data``
  (a pool sending with blocking calls from a ``queue.Queue``) and ``logging`` (counts and logs a
  request, then closes the connection or re-arms it for the next one)
- :mod:`.server` the connections, the parked set and its deadlines, counters, SIGTERM drain
- :mod:`.options` the command line (``--stage-threads``)

Every hand-off between states is a thread wake-up (a queue's condition variable or
``epoll_wait`` returning); a thread that finds its queue non-empty takes the next item without
sleeping.  One process: every stage shares the interpreter lock.
"""
