"""The project serves dbtasks' operations pages at /ops/, to staff only."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ops/", "/ops/panels/", "/ops/metrics/"])
def test_ops_pages_are_404_for_users_and_open_to_staff(client, django_user_model, path):
    user = django_user_model.objects.create_user("user", password="pw-user-123")
    staff = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)

    assert client.get(path).status_code == 404
    client.force_login(user)
    assert client.get(path).status_code == 404
    client.force_login(staff)
    assert client.get(path).status_code == 200
