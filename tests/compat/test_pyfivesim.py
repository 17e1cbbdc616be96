"""The 5sim client PyFiveSim 1.0.4 (PyPI `PyFiveSim`), unmodified, against otpbox's 5sim API:
only its base URL changes. Its sync client insists on HTTP 200 with exactly
`Content-Type: application/json` and validates every reply with pydantic models, so each call
below also proves the reply's shape."""

import asyncio

import pytest
from pyfivesim import PyFiveSimAsync, PyFiveSimSync
from pyfivesim.enums import Status
from pyfivesim.exceptions import (
    FiveSimInvalidAPIKey,
    FiveSimInvalidCountry,
    FiveSimInvalidOperator,
    FiveSimInvalidProduct,
    FiveSimNoFreePhones,
    FiveSimNotEnoughBalance,
    FiveSimOrderNotFound,
    FiveSimUnknownError,
)

DEMO_EMAIL = "demo@example.com"


def demo_key(otpbox):
    """The demo customer's API key (the fixture's `api_key`, a value or a per-e-mail maker)."""
    key = otpbox.api_key
    return key(DEMO_EMAIL) if callable(key) else key


def client(otpbox, key=None):
    return PyFiveSimSync(key or demo_key(otpbox), base_url=otpbox.base_url + "/v1")


def new_customer_key(otpbox, email):
    """A verified customer with a zero balance, and a key of theirs."""
    otpbox.cli("user", "create", "--email", email)
    return otpbox.cli("key", "create", "--email", email).strip()


def balance(api):
    return round(api.get_user_profile().balance, 2)


def wait_for_sms(otpbox, api, order_id):
    """Moves the server's clock a minute at a time (the simulator answers after its delay)
    until the order has its SMS; the order."""
    for _ in range(15):
        otpbox.advance(60)
        otpbox.run_jobs()
        order = api.get_order_info(order_id)
        if order.sms:
            return order
    pytest.fail(f"no SMS for order {order_id}")


def test_profile_and_catalogue(otpbox):
    api = client(otpbox)
    before = api.get_user_profile()
    # The profile follows the orders: buy one, and it is the last order, first of its kind
    # among the top orders, and one more live order.
    order = api.buy_number(product="vkontakte", country="russia", operator="any")
    profile = api.get_user_profile()
    assert profile.email == DEMO_EMAIL
    assert round(profile.balance, 2) == round(before.balance - order.price, 2)
    assert profile.rating == 96  # 5sim's top rating; otpbox never lowers it (test_ban_refunds)
    assert (profile.default_country.name, profile.default_country.prefix) == ("russia", "+7")
    assert profile.frozen_balance == 0
    assert profile.did_order is True
    assert profile.total_active_orders == before.total_active_orders + 1
    last = profile.last_order
    assert (last.country, last.service, last.operator) == ("russia", "vkontakte", "any")
    assert (last.service_id, last.price) == (order.id, order.price)
    assert 1 <= len(profile.last_top_orders) <= 5
    kinds = [(o.country, o.service, o.operator) for o in profile.last_top_orders]
    assert len(set(kinds)) == len(kinds), f"top orders repeat a kind: {kinds}"
    mine = [o for o in profile.last_top_orders if o.service == "vkontakte"]
    assert [(o.service_id, o.price) for o in mine] == [(order.id, order.price)]
    otpbox.advance(130)
    assert api.action_with_order("cancel", order.id).status == Status.CANCELED
    assert api.get_user_profile().total_active_orders == before.total_active_orders

    # A new customer: every number exact.
    fresh = client(otpbox, new_customer_key(otpbox, "profile-5sim@example.com"))
    profile = fresh.get_user_profile()
    assert profile.email == "profile-5sim@example.com"
    assert profile.balance == 0
    assert profile.rating == 96
    assert profile.frozen_balance == 0
    assert profile.total_active_orders == 0
    assert profile.did_order is False
    # No order yet: one well-formed placeholder in the country of the first order on sale.
    placeholder = ("russia", "any", "any", 0, 0)
    as_tuple = lambda o: (o.country, o.service, o.operator, o.service_id, o.price)
    assert as_tuple(profile.last_order) == placeholder
    assert [as_tuple(o) for o in profile.last_top_orders] == [placeholder]

    countries = {c.name: c for c in api.get_countries_list()}
    assert countries["russia"].iso == "ru"
    assert countries["russia"].prefix == "+7"
    assert countries["russia"].text_en == "Russia"
    assert {"any", "beeline", "mts"} <= set(countries["russia"].available_operators)
    assert countries["indonesia"].iso == "id"

    products = {p.name: p for p in api.get_available_products("indonesia", "any")}
    telegram = products["telegram"]
    assert telegram.category == "activation"
    assert telegram.price > 0
    assert telegram.quantity > 0

    by_country = api.get_prices(country="indonesia")
    assert by_country.name == "indonesia"
    tg = {p.name: p for p in by_country.products}["telegram"]
    any_op = {o.name: o for o in tg.operators}["any"]
    assert any_op.operator_info.price == telegram.price
    assert any_op.operator_info.quantity > 0

    pair = {o.name: o.operator_info for o in api.get_prices(country="indonesia", product="telegram")}
    assert pair["any"].price == telegram.price
    assert "telkomsel" in pair

    by_product = api.get_prices(product="telegram")
    assert by_product.name == "telegram"
    assert "indonesia" in {c.name for c in by_product.countries}

    everything = {c.name: c for c in api.get_prices()}
    assert {"russia", "indonesia", "england"} <= set(everything)


def test_buy_wait_for_the_code_and_finish(otpbox):
    api = client(otpbox)
    before = balance(api)
    live_before = api.get_user_profile().total_active_orders
    orders_before = api.get_user_orders("activation", reverse=True).total
    price = {p.name: p for p in api.get_available_products("indonesia", "any")}["telegram"].price

    order = api.buy_number(product="telegram", country="indonesia", operator="any")
    assert order.phone.startswith("+62")
    assert order.product == "telegram" and order.country == "indonesia"
    assert order.status == Status.RECEIVED
    assert order.sms is None
    assert order.price == price
    assert order.expires_at > order.created_at
    assert balance(api) == round(before - price, 2)
    assert api.get_user_profile().total_active_orders == live_before + 1

    order = wait_for_sms(otpbox, api, order.id)
    sms = order.sms if not isinstance(order.sms, list) else order.sms[0]
    assert sms.code.isdigit() and sms.code in sms.text
    assert sms.sender == "Telegram"

    # The client checks the order first and finishes it since it has an SMS.
    done = api.action_with_order("finish", order.id)
    assert done.status == Status.FINISHED
    assert balance(api) == round(before - price, 2)
    assert api.get_user_profile().total_active_orders == live_before

    history = api.get_user_orders("activation", reverse=True)
    orders = history.data if isinstance(history.data, list) else [history.data]
    assert history.total == orders_before + 1
    assert any(o.id == order.id and o.status == Status.FINISHED for o in orders)


def test_buy_and_cancel_after_the_early_cancel_window(otpbox):
    api = client(otpbox)
    before = balance(api)
    order = api.buy_number(product="whatsapp", country="russia", operator="any")
    assert balance(api) < before

    # Right after the purchase a cancel is refused, and the order stays.
    with pytest.raises(FiveSimUnknownError) as refused:
        api.action_with_order("cancel", order.id)
    assert refused.value.status_code == 400
    assert "cancel not possible yet" in refused.value.data
    assert api.get_order_info(order.id).status == Status.RECEIVED

    # Past the window (and before the simulator's SMS) it is cancelled and refunded.
    otpbox.advance(130)
    canceled = api.action_with_order("cancel", order.id)
    assert canceled.status == Status.CANCELED
    assert balance(api) == before


def test_ban_refunds(otpbox):
    api = client(otpbox)
    before = balance(api)
    order = api.buy_number(product="google", country="indonesia", operator="any")
    otpbox.advance(130)
    banned = api.action_with_order("ban", order.id)
    assert banned.status == Status.BANNED
    assert balance(api) == before
    # 5sim lowers the rating of customers who ban and cancel; otpbox never does.
    assert api.get_user_profile().rating == 96


def test_bad_key(otpbox):
    api = client(otpbox, "otp_" + "0" * 40)
    with pytest.raises(FiveSimInvalidAPIKey) as e:
        api.get_user_profile()
    assert e.value.status_code == 401
    with pytest.raises(FiveSimInvalidAPIKey):
        api.buy_number(product="telegram", country="russia", operator="any")


def test_no_balance(otpbox):
    api = client(otpbox, new_customer_key(otpbox, "broke-5sim@example.com"))
    assert api.get_user_profile().balance == 0
    with pytest.raises(FiveSimNotEnoughBalance):
        api.buy_number(product="telegram", country="russia", operator="any")
    assert api.get_user_profile().did_order is False


def test_no_free_phones(otpbox):
    api = client(otpbox)
    before = balance(api)
    # Nothing is sold at a cent: 5sim's answer to a maximum price no number meets.
    with pytest.raises(FiveSimNoFreePhones):
        api.buy_number(product="telegram", country="indonesia", operator="any", max_price=0.01)
    assert balance(api) == before


def test_wrong_names_and_unknown_orders(otpbox):
    api = client(otpbox)
    with pytest.raises(FiveSimInvalidCountry):
        api.buy_number(product="telegram", country="atlantis", operator="any")
    with pytest.raises(FiveSimInvalidOperator):
        api.buy_number(product="telegram", country="russia", operator="nosuch")
    with pytest.raises(FiveSimInvalidProduct):
        api.buy_number(product="nosuchapp", country="russia", operator="any")
    with pytest.raises(FiveSimOrderNotFound):
        api.get_order_info(99999999)


def test_async_client(otpbox):
    async def run():
        api = PyFiveSimAsync(demo_key(otpbox), base_url=otpbox.base_url + "/v1")
        profile = await api.get_user_profile()
        order = await api.buy_number(product="telegram", country="russia", operator="any")
        checked = await api.get_order_info(order.id)
        return profile, order, checked

    profile, order, checked = asyncio.run(run())
    assert profile.email == DEMO_EMAIL
    assert checked.id == order.id and checked.status == Status.RECEIVED
    # Leave nothing live for the other tests.
    otpbox.advance(130)
    assert client(otpbox).action_with_order("cancel", order.id).status == Status.CANCELED
