"""PyPI `herosms` 0.1.1 (the HeroSMS client), unmodified, against otpbox. Its own base-URL
argument points it here (`HeroSMSClient(key, base_url=…handler_api.php)`). It GETs every
action, tries JSON on every body and validates replies with pydantic models (getNumberV2 needs
`currency` as an int and `phoneNumber` as a string). It expects errors as HTTP 4xx with a JSON
`{title, details}` body (herosms/exceptions.py `raise_for_status`), which otpbox does not send:
see test_errors_reach_the_client."""

import asyncio

import pytest
from herosms import HeroSMSClient
from herosms.exceptions import (
    APIError,
    AuthenticationError,
    ConflictError,
    InsufficientFundsError,
    NoNumbersAvailableError,
)
from herosms.models import HistoryItem

from conftest import EARLY_CANCEL, SIM_DELAY


def run(coro):
    return asyncio.run(coro)


def client(otpbox, key):
    # otpbox's HeroSMS flavour of the protocol (errors as HTTP 4xx JSON, which this client
    # turns into typed exceptions). retry_attempts=1: the client retries 5xx three times 2 s
    # apart; none is expected here.
    url = otpbox.base_url + "/herosms/stubs/handler_api.php"
    return HeroSMSClient(key, base_url=url, retry_attempts=1, cache_ttl=0)


def funded_key(otpbox, email, amount="100.00"):
    """A key of a new customer with `amount` on their balance."""
    otpbox.create_user(email)
    otpbox.cli("user", "credit", "--email", email, "--amount", amount)
    return otpbox.api_key(email)


async def balance(hs):
    return round((await hs.get_balance()).amount, 2)


def test_balance_and_catalogue(otpbox, demo_key):
    async def main():
        async with client(otpbox, demo_key) as hs:
            raw = await hs.get_balance(response_format="raw")
            assert raw.startswith("ACCESS_BALANCE:") and "." in raw, raw
            assert (await hs.get_balance()).amount == float(raw.split(":", 1)[1]) > 0

            countries = {c.id: c for c in await hs.get_countries()}
            assert countries[6].name == "Indonesia"
            assert countries[6].is_available and countries[6].supports_retry

            # herosms' model parser for getServicesList iterates the values of the reply
            # object, so the documented `{"status":"success","services":[…]}` (protocols.md
            # §1.2, also live HeroSMS) breaks its model mode (client.py get_services); its
            # "json" mode returns the reply as sent.
            services = await hs.get_services(country=6, response_format="json")
            assert services["status"] == "success"
            assert {"code": "tg", "name": "Telegram"} in services["services"]

            operators = await hs.get_operators(country=6)
            assert "telkomsel" in operators["6"]

            prices = await hs.get_prices(service="tg", country=6)
            tg = prices["6"]["tg"]
            assert tg.cost > 0 and tg.count > 0

            top = await hs.get_top_countries(service="tg")
            assert top["0"]["count"] > 0 and top["0"]["price"] > 0
            assert "physicalPriceMap" in top["0"]

    run(main())


def test_order_wait_for_the_code_and_complete(otpbox, demo_key):
    async def main():
        async with client(otpbox, demo_key) as hs:
            before = await balance(hs)
            cost = (await hs.get_prices(service="tg", country=6))["6"]["tg"].cost

            act = await hs.activations.create(service="tg", country=6)
            info = act.info
            assert act.phone_number.startswith("62") and act.phone == "+" + act.phone_number
            assert info.country_code == 6
            assert info.currency in (643, 840, 978, 156)
            assert act.cost == pytest.approx(cost)
            assert info.activation_time is not None and info.activation_end_time is not None
            assert info.activation_end_time > info.activation_time
            assert info.activation_operator
            assert await balance(hs) == round(before - cost, 2)

            assert await hs.get_status_v1(act.id) == "STATUS_WAIT_CODE"
            status = await act._get_status_v2()
            assert not status.has_sms and status.code is None

            # wait_for_sms polls getStatusV2; the test moves the server's clock past the
            # simulator's delay meanwhile instead of sleeping.
            waiting = asyncio.create_task(act.wait_for_sms(timeout=20, poll_interval=0.2))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(otpbox.advance, SIM_DELAY)
            await asyncio.to_thread(otpbox.run_jobs)
            result = await waiting
            code = result.code
            assert code and code.isdigit(), result
            assert code in result.sms.text
            assert result.sms.date_time is not None
            assert await hs.get_status_v1(act.id) == f"STATUS_OK:{code}"

            # getActiveActivations: herosms' model mode reads a `data` list (client.py
            # list_active); otpbox sends sms-activate's `activeActivations`, so read the reply.
            active = await hs.activations.list_active(response_format="json")
            mine = [a for a in active["activeActivations"] if a["activationId"] == str(act.id)]
            assert len(mine) == 1 and mine[0]["smsCode"] == code

            await act.complete()
            assert act.is_finished
            assert await hs.get_status_v1(act.id) == f"STATUS_OK:{code}"
            assert await balance(hs) == round(before - cost, 2)

            history = await hs.activations.get_history()
            assert all(isinstance(h, HistoryItem) for h in history)
            done = [h for h in history if h.id == str(act.id)]
            assert len(done) == 1
            assert done[0].status == "6" and done[0].phone == act.phone_number
            assert done[0].cost == pytest.approx(cost)

    run(main())


def test_order_and_cancel_after_the_window(otpbox, demo_key):
    async def main():
        async with client(otpbox, demo_key) as hs:
            before = await balance(hs)
            act = await hs.activations.create(service="wa", country=6)
            assert await balance(hs) == round(before - act.cost, 2)

            # Inside the early-cancel window the HeroSMS flavour answers 409 EARLY_CANCEL_DENIED,
            # which herosms raises as a ConflictError; nothing changed.
            with pytest.raises(ConflictError):
                await act.cancel()
            assert await hs.get_status_v1(act.id) == "STATUS_WAIT_CODE"
            assert await balance(hs) == round(before - act.cost, 2)

            await asyncio.to_thread(otpbox.advance, EARLY_CANCEL + 1)
            await act.cancel()
            assert await hs.get_status_v1(act.id) == "STATUS_CANCEL"
            assert await balance(hs) == before

    run(main())


def test_errors_reach_the_client(otpbox, demo_key, broke_key):
    """herosms raises typed errors only for HTTP >= 400 with a JSON `{title, details}` body
    (herosms/exceptions.py raise_for_status; protocols.md §1.9, §6.1): otpbox's HeroSMS
    flavour (/herosms/stubs/handler_api.php) answers errors so, and nothing is charged."""

    async def main():
        async with client(otpbox, "otp_not_a_key") as hs:
            with pytest.raises(AuthenticationError):
                await hs.get_balance()
        async with client(otpbox, broke_key) as hs:
            with pytest.raises(InsufficientFundsError):
                await hs.activations.create(service="tg", country=6)
        async with client(otpbox, demo_key) as hs:
            before = await balance(hs)
            # Every number in Indonesia starts with 62: none is left once 62 is excluded.
            with pytest.raises(NoNumbersAvailableError):
                await hs.activations.create(service="tg", country=6, phone_exception="62")
            assert await balance(hs) == before
            act = await hs.activations.create(service="vi", country=6)
            with pytest.raises(APIError):
                await act.cancel()  # inside the early-cancel window
            await asyncio.to_thread(otpbox.advance, EARLY_CANCEL + 1)
            await act.cancel()

    run(main())


def test_rent_a_number(otpbox):
    """herosms' rent: getRentNumber with `duration` in *minutes* (client.py rent_number
    docstring), its reply parsed as an Activation (activationId, phoneNumber, activationCost,
    currency, countryCode), and serviceCountRent for the offers. A customer of its own: a
    rental costs more than the shared demo balance should lose."""

    async def main():
        async with client(otpbox, funded_key(otpbox, "rent-herosms@example.com")) as hs:
            before = await balance(hs)
            # Four hours, in the client's unit.
            rented = await hs.rent_number(service="tg", country=6, duration=4 * 60)
            assert rented.phone_number.startswith("62")
            assert rented.info.country_code == 6
            info = rented.info
            assert (info.activation_end_time - info.activation_time).total_seconds() == 4 * 3600
            assert await balance(hs) == round(before - rented.cost, 2)
            offer = await hs.get_rent_availability("tg", country=6)
            assert isinstance(offer, dict), offer

    run(main())
