"""Prometheus metrics: database-wide gauges computed at scrape time, and this process's counters."""
