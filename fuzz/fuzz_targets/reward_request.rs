//! The reward server: any request body to /get_reward and /score gets a response (never a
//! panic), and a 200 carries one finite reward per query.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }
    let path = if data.first().is_some_and(|b| b & 1 == 1) { "/score" } else { "/get_reward" };
    let body = data.get(1..).unwrap_or_default().to_vec();
    RT.with(|rt| {
        rt.block_on(async {
            let app = longwriter::serve::router(longwriter::reward::Scorer::default(), longwriter::serve::ServeConfig { max_body: 1 << 16, ..Default::default() });
            let req = axum::http::Request::post(path).header("content-type", "application/json").body(axum::body::Body::from(body)).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            if status == 200 && path == "/get_reward" {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert!(v["rewards"].as_array().unwrap().iter().all(|r| r.as_f64().is_some_and(f64::is_finite)), "{v}");
            }
        })
    });
});
