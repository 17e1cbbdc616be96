"""Every customer page opens, fits a phone and leaves the console clean."""

from conftest import DEMO_EMAIL, DEMO_PASSWORD

PUBLIC = ["/", "/login", "/signup", "/prices", "/prices?service=tg", "/privacy"]
CUSTOMER = [
    "/dashboard", "/orders", "/wallet", "/rentals", "/keys", "/prices", "/settings",
    "/settings/notifications",
]


def test_public_pages_fit(tab):
    t = tab()
    for path in PUBLIC:
        t.goto(path)
    # The sign-up's policy checkbox reads as one sentence (it once broke into four columns).
    t.goto("/signup")
    box = t.page.locator("label:has(input[name=aup])").bounding_box()
    assert box["height"] <= 60, box


def test_customer_pages_fit(tab):
    t = tab()
    t.login(DEMO_EMAIL, DEMO_PASSWORD)
    assert t.path() == "/dashboard"
    for path in CUSTOMER:
        t.goto(path)
