"""Developer commands behind the Makefile (run, browser set-up, probes)."""
