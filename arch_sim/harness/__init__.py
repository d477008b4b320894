"""The measurement harness: document roots, server processes, wrk, reschedule counters."""
