"""The read side: dashboard, metrics and health queries and views.

Nothing outside this package imports it but ``dbtasks.urls`` and the
``dbtasks_health`` command, so a project that wants neither can leave it out.
"""
