"""PyPI `smsbower` 0.1.0 (SMSBower), unmodified, against otpbox: its own `base_url` argument
takes the host root and it appends `/stubs/handler_api.php`. It GETs every action (getNumber
with `ref=572438`), raises SmsBowerError for a short list of tokens (exact, or `TOKEN:` prefix)
and for any HTTP error status, and parses a body as JSON when it looks like an object or a
list. Its getCountries reads only the object-keyed-by-id form."""

import pytest
from smsbower import SmsBowerClient, SmsBowerError

from conftest import EARLY_CANCEL, SIM_DELAY, wait_until


def client(otpbox, key):
    return SmsBowerClient(key, base_url=otpbox.base_url)


def refused(call, *args, **kwargs):
    """The error code SmsBowerError carries for a call."""
    with pytest.raises(SmsBowerError) as e:
        call(*args, **kwargs)
    return e.value.code


def test_balance_and_catalogue(otpbox, demo_key):
    with client(otpbox, demo_key) as bower:
        assert bower.get_balance() > 0

        countries = bower.get_countries()
        assert (countries["6"].id, countries["6"].eng) == ("6", "Indonesia")

        services = {s.code: s.name for s in bower.get_services_list()}
        assert services["tg"] == "Telegram"

        prices = bower.get_prices("tg", 6)
        assert prices["6"]["tg"]["cost"] > 0 and prices["6"]["tg"]["count"] > 0

        top = bower.get_top_countries_by_service("tg")
        assert top["0"]["count"] > 0 and top["0"]["price"] > 0


def test_order_wait_for_the_code_and_complete(otpbox, demo_key):
    with client(otpbox, demo_key) as bower:
        before = bower.get_balance()
        cost = bower.get_prices("tg", 6)["6"]["tg"]["cost"]

        number = bower.get_number("tg", country=6)
        assert number.id.isdigit()
        assert number.number.startswith("62") and number.number.isdigit()
        assert bower.get_balance() == pytest.approx(before - cost)

        assert bower.get_status(number.id).status == "STATUS_WAIT_CODE"
        assert bower.set_status(number.id, 1) == "ACCESS_READY"

        # The simulator sends its SMS once its delay has passed on the server's clock.
        otpbox.advance(SIM_DELAY)
        otpbox.run_jobs()
        status = wait_until(lambda: bower.get_status(number.id),
                            lambda s: s.status == "STATUS_OK")
        assert status.status == "STATUS_OK" and status.code.isdigit(), status

        # Another code on the same number (free), then finish.
        assert bower.set_status(number.id, 3) == "ACCESS_RETRY_GET"
        retry = bower.get_status(number.id)
        assert (retry.status, retry.code) == ("STATUS_WAIT_RETRY", status.code)
        assert bower.set_status(number.id, 6) == "ACCESS_ACTIVATION"
        done = bower.get_status(number.id)
        assert (done.status, done.code) == ("STATUS_OK", status.code)
        assert bower.get_balance() == pytest.approx(before - cost)


def test_order_v2_and_cancel_after_the_window(otpbox, demo_key):
    with client(otpbox, demo_key) as bower:
        before = bower.get_balance()
        order = bower.get_number_v2("wa", country=6)
        assert isinstance(order["phoneNumber"], str) and order["phoneNumber"].startswith("62")
        assert order["countryCode"] == "6"
        activation = order["activationId"]
        assert bower.get_balance() == pytest.approx(before - order["activationCost"])

        assert refused(bower.set_status, activation, 8) == "EARLY_CANCEL_DENIED"
        otpbox.advance(EARLY_CANCEL + 1)
        assert bower.set_status(activation, 8) == "ACCESS_CANCEL"
        assert bower.get_status(activation).status == "STATUS_CANCEL"
        assert bower.get_balance() == pytest.approx(before)


def test_price_buckets_v2_and_v3(otpbox, demo_key):
    """getPricesV2 (price → count buckets) and getPricesV3 (per-provider offers), SMSBower's
    additions (protocols.md §1.2 getPrices, §1.9): country → service → bucket or offer."""
    with client(otpbox, demo_key) as bower:
        assert bower.get_prices_v2("tg", 6)["6"]["tg"]
        assert bower.get_prices_v3("tg", 6)["6"]["tg"]


def test_errors(otpbox, demo_key, broke_key):
    assert refused(client(otpbox, "otp_not_a_key").get_balance) == "BAD_KEY"
    assert refused(client(otpbox, broke_key).get_number, "tg", country=6) == "NO_BALANCE"
    with client(otpbox, demo_key) as bower:
        before = bower.get_balance()
        # Every number in Indonesia starts with 62: none is left once 62 is excluded.
        assert refused(bower.get_number, "tg", country=6, phone_exception="62") == "NO_NUMBERS"
        assert refused(bower.get_number_v2, "zz", country=6) == "BAD_SERVICE"
        assert refused(bower.get_status, 99999999) == "NO_ACTIVATION"
        assert bower.get_balance() == before
