"""Benchmarks: dbtasks against django-tasks-db and Celery (``python -m bench``)."""
