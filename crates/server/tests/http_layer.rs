//! Responses the HTTP layer makes itself carry the same security headers as
//! every other response (issue 9, item 5: 414 and 431 from the parser had
//! none).

mod common;

use common::Harness;

fn assert_hardened(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_long_targets_and_too_large_headers_are_refused_with_the_security_headers() {
    let h = Harness::start().await;

    let ok = h.client.get(h.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_hardened(&ok, "200");

    // A request target over the limit (8 KiB), JSON and FHIR flavours.
    let long = "a".repeat(10 << 10);
    let r = h
        .client
        .get(h.url(&format!("/api/v1/health?q={long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_hardened(&r, "414");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too-long");
    let r = h
        .client
        .get(h.url(&format!("/fhir/metadata?q={long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_hardened(&r, "414 FHIR");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    // Up to the parser's own target limit (64 KiB) the layer answers.
    let longer = "a".repeat(60 << 10);
    let r = h
        .client
        .get(h.url(&format!("/api/v1/health?q={longer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_hardened(&r, "414 at 60 KiB");

    // Too many header fields, and too large ones.
    let mut many = h.client.get(h.url("/api/v1/health"));
    for i in 0..100 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let r = many.send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_hardened(&r, "431 count");
    for size in [40 << 10, 500 << 10] {
        let r = h
            .client
            .get(h.url("/api/v1/health"))
            .header("x-filler", "b".repeat(size))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 431, "{size} bytes");
        assert_hardened(&r, "431 size");
    }
    h.finish().await;
}
