from tests.support.data import record_world


class TestLedgerCore:
    def test_a_recorded_world_verifies(self, client, writer, as_role):
        record_world(client, writer)
        result = client.post("/v1/integrity/verification", headers=as_role("auditor")).json()
        assert result == {"ok": True, "verified_through": 10, "first_mismatch": None,
                          "reason": None, "algorithm": "sha256-chain-v2"}
