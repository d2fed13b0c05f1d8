"""Benchmarks for issue #6: dbtasks against django-tasks-db and Celery (``python -m bench``)."""
