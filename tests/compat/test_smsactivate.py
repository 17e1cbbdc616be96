"""The "official" sms-activate Python module (PyPI `smsactivate` 1.5), unmodified, against
otpbox. It has no base-URL argument: the URL is its name-mangled private attribute."""

from decimal import Decimal

from smsactivate.api import SMSActivateAPI

from conftest import EARLY_CANCEL, SIM_DELAY, wait_until


def client(otpbox, key):
    api = SMSActivateAPI(key)
    api._SMSActivateAPI__api_url = otpbox.handler_url
    return api


def balance(api):
    text = api.getBalance()["balance"]
    assert "." in text, text
    return Decimal(text)


def test_balance_and_catalogue(otpbox, demo_key):
    api = client(otpbox, demo_key)
    assert balance(api) > 0
    assert api.getBalanceAndCashBack()["balance"] == api.getBalance()["balance"]

    countries = api.getCountries()
    assert countries["6"]["eng"] == "Indonesia"
    assert countries["6"]["id"] == 6

    prices = api.getPrices(service="tg", country=6)
    assert prices["6"]["tg"]["cost"] > 0
    assert prices["6"]["tg"]["count"] > 0

    assert api.getNumbersStatus(country=6)["tg_0"] > 0
    assert "telkomsel" in api.getOperators(country=6)["countryOperators"]["6"]
    top = api.getTopCountriesByService(service="tg")
    assert top["0"]["count"] > 0 and top["0"]["price"] > 0


def test_order_wait_for_the_code_and_finish(otpbox, demo_key):
    api = client(otpbox, demo_key)
    before = balance(api)
    cost = Decimal(str(api.getPrices(service="tg", country=6)["6"]["tg"]["cost"]))

    number = api.getNumber(service="tg", country=6)
    assert "error" not in number, number
    activation = number["activation_id"]
    assert str(number["phone"]).startswith("62")
    assert balance(api) == before - cost
    assert api.getStatus(id=activation) == "STATUS_WAIT_CODE"
    assert api.setStatus(id=activation, status=1) == "ACCESS_READY"

    # The simulator sends its SMS once its delay has passed on the server's clock.
    otpbox.advance(SIM_DELAY)
    otpbox.run_jobs()
    status = wait_until(lambda: api.getStatus(id=activation),
                        lambda s: s.startswith("STATUS_OK:"))
    code = status.split(":", 1)[1]
    assert code.isdigit(), status
    assert code in api.getFullSms(id=activation)

    assert api.setStatus(id=activation, status=6) == "ACCESS_ACTIVATION"
    assert api.getStatus(id=activation) == f"STATUS_OK:{code}"
    assert balance(api) == before - cost


def test_order_v2_and_cancel_after_the_window(otpbox, demo_key):
    api = client(otpbox, demo_key)
    before = balance(api)
    number = api.getNumberV2(service="wa", country=6)
    assert isinstance(number["phoneNumber"], str)
    assert number["countryCode"] == "6"
    activation = number["activationId"]
    assert balance(api) < before

    assert api.setStatus(id=activation, status=8) == "EARLY_CANCEL_DENIED"
    otpbox.advance(EARLY_CANCEL + 1)
    assert api.setStatus(id=activation, status=8) == "ACCESS_CANCEL"
    assert balance(api) == before
    assert api.getStatus(id=activation)["error"] == "STATUS_CANCEL"


def test_rent_a_number_and_cancel_it(otpbox, demo_key):
    api = client(otpbox, demo_key)
    before = balance(api)
    offer = api.getRentServicesAndCountries(time=4, country=6)
    assert offer["services"]["tg"]["cost"] > 0
    rented = api.getRentNumber(service="tg", time=4, country=6)
    assert rented["status"] == "success", rented
    rent_id = rented["phone"]["id"]
    assert balance(api) == before - Decimal(str(offer["services"]["tg"]["cost"]))
    assert api.getRentStatus(id=rent_id) == {"status": "error", "message": "STATUS_WAIT_CODE"}
    listed = api.getRentList()["values"].values()
    assert any(r["id"] == str(rent_id) for r in listed)
    assert api.setRentStatus(id=rent_id, status=2) == {"status": "success"}
    assert balance(api) == before


def test_bad_key_no_balance_and_no_numbers(otpbox, demo_key, broke_key):
    assert client(otpbox, "otp_not_a_key").getBalance()["error"] == "BAD_KEY"
    assert client(otpbox, "").getBalance()["error"] == "NO_KEY"

    broke = client(otpbox, broke_key)
    assert broke.getBalance()["balance"] == "0.00"
    assert broke.getNumber(service="tg", country=6)["error"] == "NO_BALANCE"

    # Every number in Indonesia starts with 62: none is left once 62 is excluded.
    api = client(otpbox, demo_key)
    before = balance(api)
    assert api.getNumber(service="tg", country=6, phoneException="62")["error"] == "NO_NUMBERS"
    assert api.getNumber(service="zz", country=6)["error"] == "BAD_SERVICE"
    assert balance(api) == before
