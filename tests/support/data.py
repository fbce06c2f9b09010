"""Vivid, valid records from the 2025 story, for tests to build on."""

from typing import Any

from infra.seal import RecordedBy

# Who records what tests append below the HTTP layer.
TEST_WRITER = RecordedBy("test-writer", "a test's writer", "writer")

H100: dict[str, Any] = {"id": "nvidia-h100", "vendor": "NVIDIA", "origin_country": "US",
                        "tpp": 15830, "performance_density": 19.4,
                        "memory_bandwidth_gbps": 3350}
H20: dict[str, Any] = {"id": "nvidia-h20", "vendor": "NVIDIA", "origin_country": "US",
                       "tpp": 2368, "performance_density": 2.9}
ALIBABA: dict[str, Any] = {"id": "alibaba", "name": "Alibaba Group", "hq_country": "CN"}
ALIBABA_SG: dict[str, Any] = {"id": "alibaba-sg", "name": "Alibaba Cloud (Singapore)",
                              "hq_country": "SG", "parent_firm_id": "alibaba"}
DC_JOHOR: dict[str, Any] = {"id": "johor-dc1", "name": "Johor DC 1", "country": "MY",
                            "operator": "Nusantara Data", "operator_hq_country": "MY"}
LEASE: dict[str, Any] = {"id": "lease-ali-johor", "firm_id": "alibaba-sg",
                         "data_centre_id": "johor-dc1", "chip_model": "nvidia-h100",
                         "chip_count": 2048, "starts_on": "2025-04-01",
                         "ends_on": "2025-09-30", "purposes": ["training"]}
SHIPMENT: dict[str, Any] = {"id": "ship-h20-0501", "chip_model": "nvidia-h20", "quantity": 800,
                            "from_country": "US", "to_country": "CN",
                            "consignee_firm_id": "alibaba", "shipped_on": "2025-05-01",
                            "exporter": "NVIDIA"}
H20_RULE: dict[str, Any] = {
    "id": "us-bis-h20-2025", "authority": "US-BIS", "title": "H20 is-informed licence requirement",
    "citation": "BIS is-informed letter, 2025-04-09", "effective_from": "2025-04-09",
    "rule": {"kind": "export_licence", "chips": {"models": ["nvidia-h20"]},
             "to_countries": ["CN", "HK", "MO"], "licence_authority": "US-BIS"},
}
LICENCE: dict[str, Any] = {"id": "bis-lic-h20-ali", "authority": "US-BIS",
                           "holder_firm_id": "alibaba", "chip_models": ["nvidia-h20"],
                           "destination_countries": ["CN"], "valid_from": "2025-08-08"}
ACTIVITY: dict[str, Any] = {"id": "ft-bank-sg", "firm_id": "alibaba-sg", "purpose": "fine_tuning",
                            "data_subject_countries": ["CN"], "sensitive": True,
                            "starts_on": "2025-06-01", "data_centre_id": "johor-dc1",
                            "subject_count": 50000}



def facts_of(body: dict[str, Any]) -> dict[str, Any]:
    """What a record's create event holds for `body`: its id names the record, it is no fact."""
    return {field: value for field, value in body.items() if field != "id"}


# The create events' data as the log holds them, for tests that fold events without the API.
LEASE_SIGNED: dict[str, Any] = facts_of(LEASE)
ACTIVITY_STARTED: dict[str, Any] = {**facts_of(ACTIVITY), "location_country": None,
                                    "transfer_mechanism": None, "ends_on": None}

# In dependency order: each record names only records before it.
WORLD: list[tuple[str, dict[str, Any]]] = [
    ("chip-models", H100), ("chip-models", H20), ("firms", ALIBABA), ("firms", ALIBABA_SG),
    ("data-centres", DC_JOHOR), ("regulations", H20_RULE), ("licences", LICENCE),
    ("leases", LEASE), ("shipments", SHIPMENT), ("processing-activities", ACTIVITY),
]


def record_world(client: Any, headers: dict[str, str]) -> None:
    for collection, body in WORLD:
        response = client.post(f"/v1/{collection}", json=body, headers=headers)
        assert response.status_code == 201, response.text
