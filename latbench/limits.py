"""Physical limits every reader of latbench's files applies to a time.

No block or network runs in under a nanosecond, and none that a latency table is for takes a
day: a time outside [MIN_US, MAX_US] is damage (or a hostile file), never a measurement, and
keeps charts' log axes and sums finite.
"""

#: Shortest time a row, a network or a calibration may hold, microseconds (1 ns).
MIN_US = 1e-3
#: Longest, microseconds (a day per forward pass).
MAX_US = 86_400e6
#: The same limits in milliseconds (pools, search results, latency groups).
MIN_MS, MAX_MS = MIN_US / 1000, MAX_US / 1000
