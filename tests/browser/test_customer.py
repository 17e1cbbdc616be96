"""A customer's way through otpbox in a real browser, at 1280 and 390 px: sign up, confirm,
redeem a voucher, find Telegram by typing, order, see the code arrive without a page reload,
complete; cancel after the early-cancel window; the public price list; history and CSV;
the browser's own notification. The dev clock moves time: no test sleeps for it."""

import csv
import io
import time
import uuid

from conftest import (
    DEMO_EMAIL, DEMO_PASSWORD, EARLY_CANCEL, PASSWORD, SIM_DELAY, verify_path, voucher,
)

# A code the simulator sends is digits; the title says it.
CODE_TITLE = "document.title.startsWith('Code ')"


def visible_rows(page, selector):
    return page.locator(f"{selector} [data-search]:visible")


def order_telegram(t):
    """From the dashboard: type to find Telegram, pick it, order; the flash after."""
    page = t.page
    page.fill("#order-form input.filter", "telegr")
    rows = visible_rows(page, "#service-list")
    assert rows.count() == 1, rows.all_inner_texts()
    assert "Telegram" in rows.first.inner_text()
    # Enter in the search box picks the row left (it does not order).
    page.press("#order-form input.filter", "Enter")
    assert page.locator("#service-list input[value=tg]").is_checked()
    assert t.path().startswith("/dashboard")
    rows.first.click()
    assert page.locator("#service-list input[value=tg]").is_checked()
    with page.expect_navigation():
        page.click("#order-form button[type=submit]")
    t.assert_fits()
    flash = t.flash()
    assert "charged" in flash and "Telegram" in flash, flash
    return int(page.locator("#live-orders article.order").first.get_attribute("data-id"))


def wait_for_code(t, otpbox, order_id):
    """Moves the clock past the simulator's delay; the code shows in place."""
    page = t.page
    page.evaluate("window.__marker = 1")
    otpbox.advance(SIM_DELAY)
    otpbox.run_jobs()
    card = f'#live-orders article.order[data-id="{order_id}"]'
    t.wait_for(f"document.querySelector('{card} .code') !== null", timeout=20)
    t.wait_for(CODE_TITLE)
    code = page.locator(f"{card} .code").inner_text()
    assert code.isdigit(), code
    # The title names the code that arrived (this account's other live orders, from other
    # tests, may get theirs in the same run of the jobs).
    shown = page.locator("#live-orders .code").all_inner_texts()
    assert page.title().split(" ")[1] in shown, (page.title(), shown)
    # The same page: no reload happened.
    assert page.evaluate("window.__marker") == 1
    return code


def test_sign_up_verify_redeem_order_code_complete(tab, otpbox, admin_key, width):
    t = tab()
    page = t.page
    email = f"new-{width}-{uuid.uuid4().hex[:8]}@example.com"
    t.goto("/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.check("input[name=age]")
    page.check("input[name=aup]")
    with page.expect_navigation():
        page.click("form[action='/signup'] button[type=submit]")
    assert t.path().startswith("/dashboard"), t.path()
    t.assert_fits()
    # A new account with nothing on it is told the next step.
    assert page.locator("#next-step").is_visible()
    assert "0.00" in page.locator("#balance").inner_text()

    t.goto(verify_path(otpbox, email))
    assert "confirmed" in t.flash()

    code = voucher(otpbox, admin_key, 1000)
    page.click("#next-step a[href='/wallet#redeem']")
    page.wait_for_load_state()
    page.fill("input[name=code]", code)
    with page.expect_navigation():
        page.click("form[action='/wallet/redeem'] button[type=submit]")
    assert "10.00 USD added" in t.flash()

    t.goto("/dashboard")
    assert page.locator("#next-step").count() == 0
    order_id = order_telegram(t)
    # Cancel waits for the early-cancel window, counting down.
    cancel = page.locator(f'form[action="/orders/{order_id}/cancel"] button')
    assert cancel.is_disabled()
    assert "Cancel in" in cancel.inner_text()
    code = wait_for_code(t, otpbox, order_id)
    # The balance shown follows a change made elsewhere (the CLI), in place.
    before = page.locator("#balance").inner_text()
    amount, currency = before.split(" ")
    otpbox.cli("user", "credit", "--email", email, "--amount", "1.00")
    after = f"{float(amount) + 1:.2f} {currency}"
    t.wait_for(f"document.getElementById('balance').textContent === '{after}'", timeout=30)
    assert page.evaluate("window.__marker") == 1
    with page.expect_navigation():
        page.click(f'form[action="/orders/{order_id}/complete"] button')
    assert "Completed" in t.flash()
    assert page.locator(f'#live-orders article.order[data-id="{order_id}"]').count() == 0
    # The history shows it with its code.
    t.goto("/orders")
    row = page.locator(f'#history tr[data-id="{order_id}"]')
    assert code in row.inner_text() and "Completed" in row.inner_text()


def test_cancel_after_the_window_refunds(tab, otpbox):
    t = tab()
    page = t.page
    # The browser's clock is Playwright's, so the countdown can be moved with the server's.
    t.context.clock.install()
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    order_id = order_telegram(t)
    page.evaluate("window.__marker = 1")
    cancel = page.locator(f'form[action="/orders/{order_id}/cancel"] button')
    assert cancel.is_disabled()
    otpbox.advance(EARLY_CANCEL + 1)
    page.clock.fast_forward((EARLY_CANCEL + 1) * 1000)
    t.wait_for(f'!document.querySelector(\'form[action="/orders/{order_id}/cancel"] button\').disabled')
    assert cancel.inner_text() == "Cancel"
    assert page.evaluate("window.__marker") == 1
    with page.expect_navigation():
        cancel.click()
    flash = t.flash()
    assert "Canceled" in flash and "refunded" in flash, flash
    assert page.locator(f'article.order[data-id="{order_id}"]').count() == 0


def test_a_failed_order_keeps_the_form(tab, otpbox):
    t = tab()
    page = t.page
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    t.goto("/dashboard?country=22")
    page.fill("#order-form input.filter", "whatsapp")
    visible_rows(page, "#service-list").first.click()
    page.fill("input[name=max_price]", "0.01")
    with page.expect_navigation():
        page.click("#order-form button[type=submit]")
    assert "above your maximum" in t.flash()
    assert "country=22" in page.url
    assert page.locator("#service-list input[value=wa]").is_checked()
    assert page.input_value("input[name=max_price]") == "0.01"


def test_public_prices_search(tab):
    t = tab()
    page = t.page
    t.goto("/")
    with page.expect_navigation():
        page.click("a#see-prices")
    assert t.path().startswith("/prices")
    rows = page.locator("#price-rows tr")
    assert rows.count() > 10
    page.fill("input[name=q]", "telegr")
    assert visible_rows(page, "#price-rows").count() == 1
    assert "Telegram" in visible_rows(page, "#price-rows").first.inner_text()
    # Enter sends the search to the server (?q=), which narrows the rows the same way.
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    assert "q=telegr" in page.url
    assert page.locator("#price-rows tr").count() == 1
    # The same search without the script: ?q= on the server.
    t.goto("/prices?q=whatsapp")
    assert page.locator("#price-rows tr").count() == 1
    # One service's countries.
    with page.expect_navigation():
        page.click("#price-rows tr a")
    assert "service=wa" in page.url
    assert page.locator("#price-rows tr").count() > 10


def test_history_filter_and_csv(tab, otpbox, demo_key):
    auth = {"Authorization": f"Bearer {demo_key}"}
    made = []
    for service in ("wa", "vi"):
        status, body = otpbox.request(
            "POST", "/api/v1/activations", body={"country": 6, "service": service}, headers=auth)
        assert status == 201, body
        made.append(body["id"])
    t = tab()
    page = t.page
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    t.goto("/orders")
    # Times are shown in the browser's time zone (no "UTC" left once the script ran).
    first_time = page.locator("#history time").first
    assert "UTC" not in first_time.inner_text()
    assert first_time.get_attribute("datetime").endswith("Z")
    page.select_option("select[name=service]", "vi")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    t.assert_fits()
    rows = page.locator("#history tbody tr")
    assert rows.count() >= 1
    for text in rows.all_inner_texts():
        assert "Viber" in text, text
    assert page.locator(f'#history tr[data-id="{made[1]}"]').count() == 1
    href = page.locator("a#csv").get_attribute("href")
    assert href == "/orders.csv?service=vi", href
    r = page.request.get(otpbox.url(href))
    assert r.ok and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text())))
    assert table and all(row["service"] == "Viber" for row in table), table
    assert str(made[1]) in [row["id"] for row in table]


def test_browser_notification_when_granted(tab, otpbox):
    t = tab(permissions=["notifications"])
    page = t.page
    # Record what the page asks the browser to show.
    t.context.add_init_script("""
        window.__notes = [];
        const Real = window.Notification;
        class Recorded extends Real {
          constructor(title, options) { super(title, options); window.__notes.push([title, (options || {}).body]); }
        }
        window.Notification = Recorded;
    """)
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    assert page.evaluate("Notification.permission") == "granted"
    button = page.locator("#browser-notify")
    assert button.is_visible()
    button.click()
    t.wait_for("localStorage.getItem('otpbox-browser-notifications') === 'on'")
    order_id = order_telegram(t)
    code = wait_for_code(t, otpbox, order_id)
    t.wait_for("window.__notes.length > 0")
    notes = page.evaluate("window.__notes")
    assert [f"Code {code}", f"Telegram: {code}"] in notes, notes


def test_rental_price_before_renting_and_sms_live(tab, otpbox):
    t = tab()
    page = t.page
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    t.goto("/rentals?country=6")
    page.fill("#rent-form input.filter", "telegram")
    rows = visible_rows(page, "#rent-list")
    assert rows.count() == 1
    row_text = rows.first.inner_text()
    assert "/ hour" in row_text and "/ day" in row_text and "in stock" in row_text, row_text
    hourly = rows.first.locator(".price").inner_text()
    assert hourly.endswith(" / hour"), hourly
    amount, currency = hourly.removesuffix(" / hour").split(" ")
    rows.first.click()
    page.select_option("select[name=hours]", "12")
    total = page.locator("#rent-total").inner_text()
    # Integer minor units: 2 decimals in USD.
    expected = f"{round(float(amount) * 100) * 12 / 100:.2f} {currency}"
    assert total == f"Price: {expected} for 12 hours.", (total, hourly)
    with page.expect_navigation():
        page.click("#rent-form button[type=submit]")
    flash = t.flash()
    assert flash.startswith("Rented +") and f"for 12 hours, {expected} charged." in flash, flash
    card = page.locator("#live-rentals article.rental").first
    assert "Telegram · Indonesia" in card.inner_text()
    phone = card.locator(".phone").inner_text().lstrip("+")
    page.evaluate("window.__marker = 1")
    otpbox.cli("sms", "inject", "--to", phone, "--from", "Telegram",
               "--text", "Telegram code: 44321")
    rental_id = card.get_attribute("data-id")
    t.wait_for(
        f"(document.querySelector('article.rental[data-id=\"{rental_id}\"]') || {{}})"
        ".textContent.includes('44321')", timeout=20)
    assert page.evaluate("window.__marker") == 1


def live_requests(page):
    """Records the page's `/live` reads: a list of [url, start time, failed] (appended to)."""
    seen = []
    page.on("request", lambda r: seen.append([r.url, time.monotonic(), False]) if "/live?" in r.url else None)

    def failed(r):
        for entry in seen:
            if entry[0] == r.url:
                entry[2] = True
    page.on("requestfailed", failed)
    return seen


def test_live_waits_only_while_a_card_is_live_and_never_in_a_hidden_tab(tab, otpbox):
    # Nothing live: one plain read, no long wait holding one of the browser's connections.
    t = tab()
    page = t.page
    email = f"quiet-{t.width}-{uuid.uuid4().hex[:8]}@example.com"
    otpbox.create_user(email, PASSWORD)
    t.login(email, PASSWORD)
    reads = live_requests(page)
    t.goto("/dashboard")
    page.wait_for_timeout(2000)
    assert len(reads) == 1, reads
    assert "wait=0" in reads[0][0] and "show=orders" in reads[0][0], reads

    # A live order: the page waits for it, and stops (freeing the connection) when hidden.
    t2 = tab()
    page = t2.page
    t2.login(DEMO_EMAIL, DEMO_PASSWORD)
    order_telegram(t2)
    reads = live_requests(page)
    page.wait_for_timeout(1500)
    waits = [r for r in reads if "wait=25" in r[0]]
    assert waits, reads
    page.evaluate("""
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        document.dispatchEvent(new Event('visibilitychange'));
    """)
    page.wait_for_timeout(500)
    assert reads[-1][2], f"the hidden tab's wait was not dropped: {reads}"
    count = len(reads)
    page.wait_for_timeout(2500)
    assert len(reads) == count, reads
    # Shown again: it catches up at once.
    page.evaluate("""
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
        document.dispatchEvent(new Event('visibilitychange'));
    """)
    page.wait_for_timeout(500)
    assert len(reads) == count + 1 and "wait=" in reads[-1][0], reads


def test_live_comes_back_when_the_server_says_not_before(tab):
    t = tab()
    page = t.page
    times = []

    def busy_once(route):
        times.append(time.monotonic())
        if len(times) == 1:
            route.fulfill(status=503, headers={"Retry-After": "4"}, body="busy")
        else:
            route.continue_()
    # Routed before the dashboard ever opens: its very first read is told to come back later.
    page.route("**/live?*", busy_once)
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    assert t.path().startswith("/dashboard")
    deadline = time.monotonic() + 10
    while len(times) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert len(times) >= 2, times
    assert times[1] - times[0] >= 3.5, times
    # The browser logs every 503 it is given; that one was this test's.
    t.errors[:] = [e for e in t.errors if "status of 503" not in e]


def set_hidden(page, hidden):
    """Tells the page it was hidden or shown again, as a switch of tabs does."""
    page.evaluate("""(hidden) => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


def test_the_code_leaves_the_tab_title(tab, otpbox, demo_key):
    t = tab()
    page = t.page
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    base = page.title()
    # Seen, then the tab is left: the title forgets the code (browsers keep titles).
    first = order_telegram(t)
    wait_for_code(t, otpbox, first)
    set_hidden(page, True)
    assert page.title() == base, page.title()
    set_hidden(page, False)
    # The order ends elsewhere (here through the API): its card leaves the live states and
    # the title forgets the code with it.
    second = order_telegram(t)
    code = wait_for_code(t, otpbox, second)
    assert code in page.title()
    status, body = otpbox.request(
        "POST", f"/api/v1/activations/{second}/complete",
        headers={"Authorization": f"Bearer {demo_key}"})
    assert status == 200, body
    t.wait_for(
        f"document.querySelector('article.order[data-id=\"{second}\"]').dataset.status"
        " === 'completed'", timeout=20)
    assert page.title() == base, page.title()


def test_the_operator_chosen_sets_the_price_shown_and_charged(tab, otpbox, admin_key):
    status, body = otpbox.request(
        "POST", "/api/v1/admin/prices",
        body={"country": 0, "service": "tg", "operator": "mts", "price_minor": 177,
              "rent_hour_minor": 0},
        headers={"Authorization": f"Bearer {admin_key}"})
    assert status == 200, body
    t = tab()
    page = t.page
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    t.goto("/dashboard?country=0")
    row = page.locator("#service-list [data-service=tg]")
    any_price = row.locator(".price").inner_text()
    assert any_price != "1.77 USD", any_price
    page.select_option("#order-form select[name=operator]", "mts")
    assert row.locator(".price").inner_text() == "1.77 USD"
    page.select_option("#order-form select[name=operator]", "")
    assert row.locator(".price").inner_text() == any_price
    page.select_option("#order-form select[name=operator]", "mts")
    row.click()
    with page.expect_navigation():
        page.click("#order-form button[type=submit]")
    flash = t.flash()
    assert "1.77 USD charged" in flash, flash
