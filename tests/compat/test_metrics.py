"""GET /metrics read by the Prometheus project's own text-format parser (prometheus_client):
the exposition parses, every family has its type, and the counters move with traffic."""

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import METRICS_TOKEN


def scrape(otpbox, token=METRICS_TOKEN):
    req = urllib.request.Request(otpbox.base_url + "/metrics")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, sample, **labels):
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def get(otpbox, path):
    with urllib.request.urlopen(otpbox.base_url + path, timeout=30) as r:
        return r.read().decode()


def test_metrics_need_the_token(otpbox):
    for token in (None, "wrong"):
        try:
            scrape(otpbox, token)
        except urllib.error.HTTPError as e:
            assert e.code == 401
        else:
            raise AssertionError(f"/metrics answered with token {token!r}")


def test_the_exposition_parses_and_counters_move(otpbox, demo_key):
    before = scrape(otpbox)
    types = {name: f.type for name, f in before.items()}
    assert types["otpbox_http_requests"] == "counter"
    assert types["otpbox_http_request_duration_seconds"] == "histogram"
    assert types["otpbox_orders_live"] == "gauge"
    assert types["otpbox_database_bytes"] == "gauge"
    assert value(before, "otpbox_database_up", "otpbox_database_up") == 1
    assert value(before, "otpbox_database_bytes", "otpbox_database_bytes") > 0

    api = f"/stubs/handler_api.php?api_key={demo_key}"
    answer = get(otpbox, api + "&action=getNumber&service=tg&country=6")
    assert answer.startswith("ACCESS_NUMBER:"), answer
    for _ in range(3):
        get(otpbox, api + "&action=getBalance")
    otpbox.run_jobs()

    after = scrape(otpbox)
    handled = lambda f: value(
        f, "otpbox_http_requests", "otpbox_http_requests_total",
        family="handler_api", status="2xx")
    assert handled(after) - handled(before) == 4
    count = lambda f: value(
        f, "otpbox_http_request_duration_seconds",
        "otpbox_http_request_duration_seconds_count", family="handler_api")
    assert count(after) - count(before) == 4
    live = lambda f: sum(
        s.value for s in f["otpbox_orders_live"].samples if s.labels["state"] == "waiting")
    assert live(after) == live(before) + 1
    runs = lambda f: value(
        f, "otpbox_job_runs", "otpbox_job_runs_total", job="expiry", result="ok")
    assert runs(after) >= runs(before) + 1
    # The order was a write through the shared connection: a commit holding at least it.
    commits = lambda f: value(f, "otpbox_db_commits", "otpbox_db_commits_total")
    writes = lambda f: value(f, "otpbox_db_writes", "otpbox_db_writes_total")
    assert types["otpbox_db_commits"] == "counter"
    assert commits(after) >= commits(before) + 1
    assert writes(after) >= writes(before) + 1
    assert writes(after) >= commits(after)
