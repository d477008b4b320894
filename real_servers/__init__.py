"""The two real servers of arch-sim and the HTTP core they share.

- ``real_servers.threaded``   kHTTPd <= 0.1.2: threads, each handling one request at a time.
- ``real_servers.stategroup`` kHTTPd >= 0.1.3: one worker per CPU, requests grouped by state.
- ``real_servers.core``       parser, responses, MIME types, path security, file cache.

Only the standard library is used, so every cost the servers pay is visible.
"""
