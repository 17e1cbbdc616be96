"""PyPI `grizzly-sms-client` 0.1.1 (Grizzly SMS), unmodified, against otpbox: its own
`base_url` argument takes the host root and it appends `/stubs/handler_api.php`. It GETs every
action with `ref_id=tysik`, decodes JSON only when the Content-Type says json, raises
GrizzlySmsError for its known error tokens and for text it cannot parse (`UNEXPECTED_RESPONSE`)."""

import pytest
from grizzly_sms import ActivationAction, GrizzlySms, GrizzlySmsError

from conftest import EARLY_CANCEL, SIM_DELAY


def client(otpbox, key):
    # otpbox's Grizzly flavour of the protocol (getActiveActivations as a bare list).
    return GrizzlySms(key, base_url=otpbox.base_url + "/grizzly")


def refused(call, *args, **kwargs):
    """The GrizzlySmsError a call raises."""
    with pytest.raises(GrizzlySmsError) as e:
        call(*args, **kwargs)
    return e.value


def test_balance_and_catalogue(otpbox, demo_key):
    with client(otpbox, demo_key) as sms:
        assert sms.get_balance() > 0

        countries = {c.id: c for c in sms.get_countries()}
        assert countries[6].eng == "Indonesia"

        services = {s.code: s.name for s in sms.get_services()}
        assert services["tg"] == "Telegram"

        prices = sms.get_prices(service="tg", country=6)
        assert prices["6"]["tg"]["cost"] > 0
        quotes = sms.find_prices(service="tg", country=6, min_count=1)
        assert len(quotes) == 1
        assert (quotes[0].country, quotes[0].service) == ("6", "tg")
        assert quotes[0].cost == prices["6"]["tg"]["cost"] and quotes[0].count > 0


def test_order_wait_for_the_code_and_complete(otpbox, demo_key):
    with client(otpbox, demo_key) as sms:
        before = sms.get_balance()
        cost = sms.get_prices(service="tg", country=6)["6"]["tg"]["cost"]

        ordered = sms.get_number("tg", country=6)
        assert ordered.activation_id.isdigit()
        assert ordered.phone_number.startswith("62") and ordered.phone_number.isdigit()
        assert sms.get_balance() == pytest.approx(before - cost)

        status = sms.get_status(ordered.activation_id)
        assert (status.status, status.code) == ("STATUS_WAIT_CODE", None)
        assert sms.get_status_v2(ordered.activation_id)["sms"] is None
        assert sms.ready(ordered.activation_id) == "ACCESS_READY"

        # The simulator sends its SMS once its delay has passed on the server's clock.
        otpbox.advance(SIM_DELAY)
        otpbox.run_jobs()
        received = sms.wait_for_code(ordered.activation_id, interval_ms=100, timeout_ms=10_000)
        assert received.code.isdigit(), received
        v2 = sms.get_status_v2(ordered.activation_id)
        assert v2["sms"]["code"] == received.code and received.code in v2["sms"]["text"]

        assert sms.complete(ordered.activation_id) == "ACCESS_ACTIVATION"
        status = sms.get_status(ordered.activation_id)
        assert (status.status, status.code) == ("STATUS_OK", received.code)
        assert sms.get_balance() == pytest.approx(before - cost)


def test_order_v2_and_cancel_after_the_window(otpbox, demo_key):
    with client(otpbox, demo_key) as sms:
        before = sms.get_balance()
        ordered = sms.get_number_v2("wa", country=6)
        assert ordered.phone_number.startswith("62")
        assert ordered.country_code == "6"
        assert ordered.can_get_another_sms is True
        assert ordered.currency in (643, 840, 978, 156)
        assert len(ordered.activation_time) == len("2026-01-02 03:04:05")
        assert sms.get_balance() == pytest.approx(before - ordered.activation_cost)

        # EARLY_CANCEL_DENIED is not one of the client's known tokens: it comes back as an
        # unexpected setStatus reply, with the token as its text.
        early = refused(sms.cancel, ordered.activation_id)
        assert (early.code, early.raw) == ("UNEXPECTED_RESPONSE", "EARLY_CANCEL_DENIED")

        otpbox.advance(EARLY_CANCEL + 1)
        # Grizzly documents -1 as the other cancel code.
        assert sms.cancel(ordered.activation_id, ActivationAction.CANCEL_ALT) == "ACCESS_CANCEL"
        assert sms.get_status(ordered.activation_id).status == "STATUS_CANCEL"
        assert refused(sms.wait_for_code, ordered.activation_id).code == "STATUS_CANCEL"
        assert sms.get_balance() == pytest.approx(before)


def test_active_activations(otpbox, demo_key):
    """grizzly's getActiveActivations parser takes a bare JSON list (grizzly_sms/parse.py
    parse_activations: anything but a list or null is UNEXPECTED_RESPONSE); otpbox sends
    sms-activate's `{"status":"success","activeActivations":[…]}` (protocols.md §1.2, §6.3)."""
    with client(otpbox, demo_key) as sms:
        ordered = sms.get_number("ds", country=6)
        try:
            active = {a.activation_id: a for a in sms.get_active_activations()}
            mine = active[ordered.activation_id]
            assert (mine.phone_number, mine.service_code, mine.country_code) == (
                ordered.phone_number, "ds", "6")
        finally:
            otpbox.advance(EARLY_CANCEL + 1)
            assert sms.cancel(ordered.activation_id) == "ACCESS_CANCEL"


def test_price_buckets_v2_and_v3(otpbox, demo_key):
    """getPricesV2 (price → count buckets) and getPricesV3 (per-provider offers), Grizzly's
    additions (protocols.md §1.2 getPrices, §1.9): country → service → bucket or offer."""
    with client(otpbox, demo_key) as sms:
        v2 = sms.get_prices_v2(service="tg", country=6)
        assert v2["6"]["tg"]
        v3 = sms.get_prices_v3(service="tg", country=6)
        assert v3["6"]["tg"]


def test_errors(otpbox, demo_key, broke_key):
    assert refused(client(otpbox, "otp_not_a_key").get_balance).code == "BAD_KEY"
    assert refused(client(otpbox, broke_key).get_number, "tg", country=6).code == "NO_BALANCE"
    with client(otpbox, demo_key) as sms:
        before = sms.get_balance()
        # Every number in Indonesia starts with 62: none is left once 62 is excluded.
        assert refused(sms.get_number, "tg", country=6, phone_exception=["62"]).code \
            == "NO_NUMBERS"
        assert refused(sms.get_number_v2, "zz", country=6).code == "BAD_SERVICE"
        assert refused(sms.get_status, 99999999).code == "NO_ACTIVATION"
        assert sms.get_balance() == before
