"""PyPI `aiosmsactivate` 1.5.1, unmodified, against otpbox. It POSTs every parameter in the
query string with an empty body, parses getNumberV2 into a strict pydantic model, sends rent
parameters with trailing spaces ("time ") and set_rent_status as action=getRentStatus."""

import asyncio

import pytest
from aiosmsactivate import SmsActivate
from aiosmsactivate.exceptions import SmsActivateException
from aiosmsactivate.models import Number, SetActivationStatusResponse
from aiosmsactivate.types import ActivationStatus, SetActivationStatus

from conftest import EARLY_CANCEL, SIM_DELAY


def run(coro):
    return asyncio.run(coro)


def client(otpbox, key):
    return SmsActivate(key, base_url=otpbox.handler_url)


async def refused(call):
    """The error code aiosmsactivate raises for a call."""
    with pytest.raises(SmsActivateException) as e:
        await call
    return e.value.code


def test_balance_and_catalogue(otpbox, demo_key):
    async def main():
        sa = client(otpbox, demo_key)
        assert await sa.get_balance() > 0
        assert await sa.get_balance_and_cashback() == await sa.get_balance()

        countries = await sa.get_countries()
        assert countries["6"]["eng"] == "Indonesia"
        services = await sa.get_service_list(country="6")
        assert {"code": "tg", "name": "Telegram"} in services["services"]
        assert await sa.get_service_name("tg") == "Telegram"
        operators = await sa.get_operators(country="6")
        assert "telkomsel" in operators["countryOperators"]["6"]

        prices = await sa.get_prices(service="tg", country=6)
        assert prices["6"]["tg"]["cost"] > 0
        top = await sa.get_available_countries("tg", freePrice=True)
        assert top["0"]["count"] > 0 and "freePriceMap" in top["0"]
        counts = await sa.get_count_numbers("6", "any")
        assert counts["tg_0"] > 0

    run(main())


def test_order_wait_for_the_code_and_finish(otpbox, demo_key):
    async def main():
        sa = client(otpbox, demo_key)
        before = await sa.get_balance()
        number = await sa.purchase("tg", country=6)
        assert isinstance(number, Number), number
        assert number.phone_number.startswith("62")
        assert number.country_code == "6"
        assert number.activation_unix_time > 0

        status = await sa.get_activation_status(number.activation_id)
        assert status.sms is None
        assert await sa.get_activation_status_v1(number.activation_id) == (
            ActivationStatus.WAIT, None)

        # wait_sms_code polls getStatus while the SMS is on its way: the test moves the
        # server's clock past the simulator's delay meanwhile instead of sleeping.
        waiting = asyncio.create_task(
            sa.wait_sms_code(number.activation_id, timeout=20, per_attempt=0.2))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(otpbox.advance, SIM_DELAY)
        await asyncio.to_thread(otpbox.run_jobs)
        code = await waiting
        assert code and code.isdigit(), code

        status = await sa.get_activation_status(number.activation_id)
        assert status.sms.code == code and code in status.sms.text
        active = await sa.get_active_activations()
        assert any(a["activationId"] == str(number.activation_id)
                   for a in active["activeActivations"])

        done = await sa.set_activation_status(number.activation_id, SetActivationStatus.COMPLETE)
        assert done == SetActivationStatusResponse.ACTIVATED
        assert await sa.get_balance() == pytest.approx(before - number.activation_cost)

    run(main())


def test_order_and_cancel_after_the_window(otpbox, demo_key):
    async def main():
        sa = client(otpbox, demo_key)
        before = await sa.get_balance()
        number = await sa.purchase("wa", country=6, orderId="compat-aio-1")
        assert await refused(sa.purchase("wa", country=6, orderId="compat-aio-1")) \
            == "ORDER_ALREADY_EXISTS"
        assert await sa.get_balance() == pytest.approx(before - number.activation_cost)

        assert await refused(sa.set_activation_status(number.activation_id, 8)) \
            == "EARLY_CANCEL_DENIED"
        await asyncio.to_thread(otpbox.advance, EARLY_CANCEL + 1)
        cancel = await sa.set_activation_status(number.activation_id, SetActivationStatus.CANCEL)
        assert cancel == SetActivationStatusResponse.CANCEL
        assert await sa.get_activation_status_v1(number.activation_id) == (
            ActivationStatus.CANCEL, None)
        assert await sa.get_balance() == pytest.approx(before)

    run(main())


def test_rent_with_the_clients_parameter_quirks(otpbox, demo_key):
    async def main():
        sa = client(otpbox, demo_key)
        before = await sa.get_balance()
        offer = await sa.get_rent_services_and_countries(time=4, country="6")
        cost = offer["services"]["tg"]["cost"]
        rented = await sa.get_rent_number("tg", time=4, country="6")
        assert rented["status"] == "success", rented
        rent_id = rented["phone"]["id"]
        assert await sa.get_balance() == pytest.approx(before - cost)
        assert await sa.get_rent_status(str(rent_id)) == {
            "status": "error", "message": "STATUS_WAIT_CODE"}
        assert await sa.set_rent_status(str(rent_id), 2) == {"status": "success"}
        assert await sa.get_balance() == pytest.approx(before)
        assert await refused(sa.continue_rent_number(str(rent_id), 4)) == "RENT_DIE"

    run(main())


def test_bad_key_no_balance_and_no_numbers(otpbox, demo_key, broke_key):
    async def main():
        assert await refused(client(otpbox, "otp_not_a_key").get_balance()) == "BAD_KEY"
        broke = client(otpbox, broke_key)
        assert await broke.get_balance() == 0.0
        assert await refused(broke.purchase("tg", country=6)) == "NO_BALANCE"
        assert await refused(broke.get_number("tg", country=6)) == "NO_BALANCE"

        sa = client(otpbox, demo_key)
        before = await sa.get_balance()
        # Every number in Indonesia starts with 62: none is left once 62 is excluded.
        assert await refused(sa.purchase("tg", country=6, phoneException="62")) == "NO_NUMBERS"
        assert await refused(sa.purchase("zz", country=6)) == "BAD_SERVICE"
        assert await sa.get_balance() == before

    run(main())
