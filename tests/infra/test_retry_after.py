"""A receiver's Retry-After is read as RFC 9110 says, and nothing it sends breaks the dispatcher."""

from infra.webhooks import _retry_after


def test_delta_seconds_are_read_as_seconds() -> None:
    assert _retry_after(" 120 ") == 120.0


def test_a_superscript_digit_is_not_a_number_of_seconds() -> None:
    assert _retry_after("²") is None


def test_an_http_date_in_the_past_means_now() -> None:
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_garbage_is_ignored() -> None:
    assert _retry_after("soon") is None
    assert _retry_after(None) is None
