//! A panicking handler costs one request, never a worker: it answers 500 and the server
//! keeps serving.

mod common;

use std::time::Duration;

use common::{eventually, TestServer};

#[test]
fn handler_panic_answers_500_and_the_next_request_succeeds() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1"), ("OTPBOX_WORKERS", "2")]);
    // More panics than workers: a worker that died with its handler would show here.
    for i in 0..5 {
        let r = server.client().get("/__dev/panic");
        assert_eq!(r.status, 500, "panic {i}");
        assert!(r.is_html());
        assert!(
            r.text()
                .contains("Something went wrong on our side. Please try again."),
            "panic {i}: {}",
            r.text()
        );
        let r = server.client().get("/healthz");
        assert_eq!(r.status, 200, "after panic {i}");
        assert_eq!(r.text(), "ok");
    }
    // The log line is written before the answer; its forwarding may lag behind.
    let logged = eventually(Duration::from_secs(5), || {
        server
            .output()
            .matches("handler panicked on GET /__dev/panic")
            .count()
            == 5
    });
    assert!(logged, "output:\n{}", server.output());
}

#[test]
fn panic_route_exists_only_with_the_dev_clock() {
    let server = TestServer::start();
    assert_eq!(server.client().get("/__dev/panic").status, 404);
}
