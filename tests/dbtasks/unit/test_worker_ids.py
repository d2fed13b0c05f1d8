"""Worker ids are unique per process and say where the worker runs."""

from __future__ import annotations

import os
import re
import socket

from dbtasks.models import MAX_LENGTH_WORKER_ID
from dbtasks.worker import make_worker_id


def test_an_id_is_the_name_the_pid_and_a_random_part():
    assert re.fullmatch(rf"mailer:{os.getpid()}:[0-9a-f]{{8}}", make_worker_id("mailer"))


def test_without_a_name_the_host_name_is_used():
    assert make_worker_id().startswith(f"{socket.gethostname()}:{os.getpid()}:")


def test_ids_differ_even_with_the_same_name_in_the_same_process():
    assert len({make_worker_id("same") for _ in range(100)}) == 100


def test_a_long_name_is_cut_to_fit_the_column():
    worker_id = make_worker_id("x" * 500)

    assert len(worker_id) <= MAX_LENGTH_WORKER_ID
    # The name is cut; the pid and the random part that make it unique are kept.
    assert re.fullmatch(rf"x+:{os.getpid()}:[0-9a-f]{{8}}", worker_id), worker_id
