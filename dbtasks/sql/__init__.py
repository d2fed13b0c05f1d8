"""Every hand-written SQL statement dbtasks runs: claim, close, enqueue + NOTIFY, purge."""
