"""The admin side in a real browser, at 1280 and 390 px: the demo's administrator signs in,
the overview draws its charts from real orders, the orders list filters, the price tools
preview before they change anything, the catalogue renames, and no admin page is wider
than the viewport (`Tab.goto` checks every page it opens)."""

import re

from conftest import DEMO_EMAIL, SIM_DELAY

# Made by `otpbox demo` (the install had none) with a random password printed once.
ADMIN_EMAIL = "admin@demo.example"


def admin_password(otpbox):
    """The demo administrator's password, as `otpbox demo` printed it at start."""
    m = re.search(r"Admin:    admin@demo\.example / (\S+)", otpbox.log())
    assert m, "the demo printed no administrator password"
    return m.group(1)


ADMIN_PAGES = [
    "/admin", "/admin/users", "/admin/orders", "/admin/orders?kind=rental", "/admin/prices",
    "/admin/catalogue", "/admin/vouchers", "/admin/numbers", "/admin/providers",
    "/admin/partners", "/admin/payouts", "/admin/payments", "/admin/jobs",
    "/admin/retention", "/admin/outbox", "/admin/audit", "/admin/requests", "/admin/abuse",
    "/admin/flags", "/admin/blocked", "/admin/legal",
]


def completed_order(otpbox, demo_key):
    """One Telegram activation of the demo customer that got its code and was completed,
    folded into the statistics."""
    auth = {"Authorization": f"Bearer {demo_key}"}
    status, body = otpbox.request(
        "POST", "/api/v1/activations", body={"country": 6, "service": "tg"}, headers=auth
    )
    assert status == 201, body
    otpbox.advance(SIM_DELAY + 1)
    otpbox.run_jobs()
    status, body = otpbox.request(
        "POST", f"/api/v1/activations/{body['id']}/complete", headers=auth
    )
    assert status == 200, body
    # The stats job folds the orders that ended more than two minutes ago (stats::LAG).
    otpbox.advance(125)
    otpbox.run_jobs()


def test_admin_overview_orders_prices_catalogue(tab, otpbox, demo_key, width):
    completed_order(otpbox, demo_key)
    t = tab()
    t.login(ADMIN_EMAIL, admin_password(otpbox))
    page = t.page

    # The overview: three charts as inline SVG, with data.
    t.goto("/admin")
    for chart in ("chart-orders", "chart-sources", "chart-revenue"):
        svg = page.locator(f"#{chart} svg")
        assert svg.count() == 1, chart
        assert svg.get_attribute("role") == "img"
        assert page.locator(f"#{chart} svg > title").first.text_content()
    assert page.locator("#chart-orders rect.completed").count() >= 1
    assert page.locator("#chart-revenue rect.revenue").count() >= 1
    assert page.locator("#queues li a").count() == 6
    box = page.locator("#chart-orders svg").bounding_box()
    assert box["width"] <= width, box

    # The orders list, filtered through its form.
    t.goto("/admin/orders")
    page.select_option("#order-filters select[name=status]", "completed")
    page.fill("#order-filters input[name=account]", DEMO_EMAIL)
    with page.expect_navigation():
        page.click("#order-filters button[type=submit]")
    t.assert_fits()
    assert "status=completed" in page.url
    statuses = page.locator("table.orders td.status").all_inner_texts()
    assert statuses and all(s == "completed" for s in statuses), statuses

    # Bulk markup: a preview that changes nothing (no provider sells here: it says so).
    t.goto("/admin/prices?country=6")
    page.fill("#markup-form input[name=percent]", "25")
    with page.expect_navigation():
        page.click("#markup-form button[type=submit]")
    t.assert_fits()
    assert page.locator("h1").inner_text().startswith("Preview: markup 25% over cost")
    assert "no provider cost" in page.locator(".notice").inner_text()
    # Copy Indonesia's prices to another country (one per width, so each run has changes):
    # the preview lists them, Apply saves them.
    target = {1280: "8", 390: "7"}[width]
    t.goto("/admin/prices?country=6")
    page.select_option("#copy-form select[name=from]", "6")
    page.select_option("#copy-form select[name=to]", target)
    with page.expect_navigation():
        page.click("#copy-form button[type=submit]")
    t.assert_fits()
    rows = page.locator("#preview tbody tr").count()
    assert rows > 0
    with page.expect_navigation():
        page.click("#apply-form button[type=submit]")
    assert t.flash() == f"{rows} prices changed."

    # The catalogue: rename Uber and back (its code stays).
    t.goto("/admin/catalogue")
    row = page.locator("#services tr[data-service=ub]")
    original = row.locator("input[name=name]").input_value()
    for name in (f"Uber {width}", original):
        row.locator("input[name=name]").fill(name)
        with page.expect_navigation():
            row.locator("button[type=submit]", has_text="Rename").click()
        t.assert_fits()
        assert t.flash() == f"Service ub renamed to {name}."
        row = page.locator("#services tr[data-service=ub]")
        assert row.locator("input[name=name]").input_value() == name

    # Every admin page fits the viewport.
    for path in ADMIN_PAGES:
        t.goto(path)
