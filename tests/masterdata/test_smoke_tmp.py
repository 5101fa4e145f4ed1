import pytest

from tests.masterdata.conftest import estate

pytestmark = pytest.mark.django_db


def test_smoke(north):
    results = north.results(estate())
    assert [r["result"] for r in results] == ["created"] * 6, results
    again = north.results(estate())
    assert [r["result"] for r in again] == ["unchanged"] * 6
