"""tests/race_evidence.py: a race test says whether its two deliveries really raced, never passes as if they had."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.race_evidence import not_raced, race_evidence

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_deliveries_one_after_the_other_are_not_a_race() -> None:
    # Given the ledger after two deliveries that ran one after the other: the second's claim found the LOADED row
    # and wrote nothing, and no statement waited
    ledger = [("LOADED", at(0), at(2))]
    # When the evidence is read / Then there is none, and the reason says what the run did exercise
    assert race_evidence(ledger, [0, 0]) is None
    reason = not_raced(ledger, [0, 0])
    assert "did not race" in reason and "one after the other" in reason and "LOADED" in reason


def test_a_losing_claim_before_the_winners_ledger_update_is_a_race() -> None:
    # Given the loser's STARTED row, claimed half a second after the winner's and before its ledger UPDATE
    ledger = [("LOADED", at(0), at(2)), ("STARTED", at(0.5), None)]
    # When the evidence is read / Then it names the loser's claim, whether or not a wait was recorded
    evidence = race_evidence(ledger)
    assert evidence is not None and "before the winner's ledger UPDATE" in evidence


def test_a_losing_claim_after_the_winners_ledger_update_proves_nothing_by_itself() -> None:
    # Given a loser whose claim ran after the winner's ledger UPDATE (before its COMMIT), and no recorded wait
    ledger = [("LOADED", at(0), at(2)), ("STARTED", at(2.5), None)]
    # When the evidence is read / Then it does not count as both deliveries claiming before either published
    assert race_evidence(ledger, [0]) is None


def test_a_lock_wait_is_a_race() -> None:
    # Given deliveries whose ledger shows one row, but one of whose ledger statements waited 850 ms for a lock
    # When the evidence is read / Then the wait is the evidence
    evidence = race_evidence([("LOADED", at(0), at(2))], [0, 850])
    assert evidence is not None and "850 ms" in evidence


def test_two_loaded_rows_are_no_evidence_of_a_race() -> None:
    # Given a ledger the correctness checks would already refuse (loaded twice) / Then it is no evidence either
    assert race_evidence([("LOADED", at(0), at(2)), ("LOADED", at(0.5), at(3))]) is None
