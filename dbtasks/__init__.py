"""dbtasks: a database task backend and worker for Django's ``django.tasks``."""
