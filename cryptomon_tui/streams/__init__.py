"""Long-lived WebSocket stream probes: is the stream a bot trades on alive, fresh and complete?

A REST probe answers "can I reach the exchange"; a stream probe answers "is the data my bot reads
still arriving, on time and without holes". The most reported silent failure of trading bots is a
socket that stays open while it delivers nothing or stale data; this package measures exactly that.

- ``tracker``: pure bookkeeping for one stream (gaps, silence, lag, sequence holes, heartbeats,
  disconnects) and its verdict; no I/O, time passed in.
- ``attempts``: connection-attempt limits and reconnect backoff (never the cause of a ban).
- ``probe``: the aiohttp WebSocket client loop that feeds a tracker.
"""
