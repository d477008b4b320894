"""kHTTPd's old architecture (<= 0.1.2): "a number of threads, handling one request each".

Two shapes, both with blocking calls:

- ``--threads N`` (default 64), Apache-like pool: a dispatcher thread accepts connections and
  watches every idle keep-alive connection with epoll; each request that arrives is handed to a
  free pool thread, which reads it, answers it with blocking sends, and hands the connection
  back.  Every request is a hand-off between threads, as in kHTTPd 0.1.2, where each request was
  its own HTTP/1.0 connection.
- ``--threads 0``: one new thread per connection, serving all of that connection's requests
  (Apache-prefork-like).
"""
