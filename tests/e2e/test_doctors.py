"""GET /doctors through the gateway returns the seeded doctors."""

from __future__ import annotations

from local.seed import DOCTORS_SEED
from tests.e2e.client import Api


def test_seeded_doctors_are_listed_through_the_gateway(api: Api) -> None:
    response = api.get("/doctors", params={"page_size": 100})
    assert response.status_code == 200
    listed = {d["id"]: d for d in response.json()["items"]}
    for doctor_id, _email, name, specialty, zone in DOCTORS_SEED:
        assert listed[str(doctor_id)] == {"id": str(doctor_id), "name": name, "specialty": specialty, "timezone": zone}


def test_doctors_filter_by_specialty_and_page(api: Api) -> None:
    response = api.get("/doctors", params={"specialty": "dermatology"})
    assert [d["name"] for d in response.json()["items"]] == ["Dr. Jonas Berg"]
    first = api.get("/doctors", params={"page_size": 1}).json()
    assert len(first["items"]) == 1 and first["next_page_token"]
    second = api.get("/doctors", params={"page_size": 1, "page_token": first["next_page_token"]}).json()
    assert second["items"][0]["id"] != first["items"][0]["id"]


def test_one_doctor_and_unknown_doctor(api: Api) -> None:
    doctor_id = str(DOCTORS_SEED[2][0])
    assert api.get(f"/doctors/{doctor_id}").json()["timezone"] == "Asia/Tokyo"
    missing = api.get("/doctors/4b0f6a43-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert api.get("/doctors/not-a-uuid").status_code == 404
