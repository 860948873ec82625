//! `argus serve` from a client written from the Open Inference Protocol v2 REST spec (a raw
//! HTTP/1.1 client, no server code shared): health and metadata; infer on the churn and
//! camera-person bundles gives the worker pipeline's outputs on the same inputs (the
//! bundles' fixtures and `Classifier::classify`); malformed, oversize and overload requests
//! get the documented status and a JSON error, and the server keeps serving after each; a
//! version swap under HTTP load drops no request and every answer names its version; the
//! binary serves the same routes and `/metrics`. No broker needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::{free_port, repo_root, spawn_argus};
use argus_model::Classifier;
use argus_wire::Payload;
use argus_worker::pipeline::Pipeline;
use argus_worker::serve::{self, ServeSettings, Server};
use argus_worker::{Models, Serving, WorkerSettings};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An error answer: `status` and a JSON body `{"error": "..."}` (schemas/serve-error).
    fn assert_error(&self, status: u16, says: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        validate("serve-error.schema.json", &v);
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(says), "{msg:?} should say {says:?}");
    }
}

/// `method path` with `headers` and `body`, one connection per request.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading the whole body and close.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    http(addr, "GET", path, &[], b"").await
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Answer {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
}

fn validate(schema: &str, v: &Value) {
    let text = std::fs::read_to_string(repo_root().join("schemas").join(schema)).unwrap();
    let validator = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{v}");
}

/// The bundle in `models/<name>`, or a copy of it whose manifest says `version`.
fn bundle(name: &str, version: &str) -> PathBuf {
    let dir = repo_root().join("models").join(name);
    if version == "1" {
        return dir;
    }
    let copy = std::env::temp_dir().join(argus_e2e::unique(&format!("serve-{name}-v{version}")));
    std::fs::create_dir_all(&copy).unwrap();
    argus_e2e::copy_bundle_files(&dir, &copy);
    let manifest = std::fs::read_to_string(dir.join("manifest.toml"))
        .unwrap()
        .replacen("version = \"1\"", &format!("version = \"{version}\""), 1);
    std::fs::write(copy.join("manifest.toml"), manifest).unwrap();
    copy
}

fn pipeline(dir: &Path) -> (Arc<Classifier>, Arc<Pipeline>) {
    let model = Arc::new(Classifier::load(dir).unwrap());
    let config = WorkerSettings::default()
        .config("serve-test", argus_worker::AlertRule::from_bundle(&model));
    (model.clone(), Arc::new(Pipeline::new(model, &config)))
}

/// A running in-process server.
struct Running {
    addr: SocketAddr,
    server: Arc<Server>,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(models: Arc<Models>, settings: ServeSettings, inject_delay: Duration) -> Running {
    let server = Server::new(models, settings, inject_delay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve::run(
        listener,
        serve::router(server.clone()),
        stop.clone(),
    ));
    // Alive before warm, ready after.
    assert_eq!(get(addr, "/v2/health/live").await.status, 200);
    let w = server.clone();
    tokio::task::spawn_blocking(move || w.warm())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get(addr, "/v2/health/ready").await.status, 200);
    Running { addr, server, stop }
}

async fn start_one(name: &str, settings: ServeSettings) -> (Running, Arc<Classifier>) {
    let (model, p) = pipeline(&bundle(name, "1"));
    (
        start(
            Models::new(Serving::production(p)),
            settings,
            Duration::ZERO,
        )
        .await,
        model,
    )
}

/// The parity rows of the churn bundle: encoded features and P(stay), P(churn) at batch 1.
fn churn_parity() -> Vec<(Vec<f32>, [f32; 2])> {
    let mut r = csv_rows(&repo_root().join("models/churn/fixtures/parity.csv"));
    let header = r.remove(0);
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (p0, p1) = (col("p0_b1"), col("p1_b1"));
    r.iter()
        .map(|row| {
            let f: Vec<f32> = (0..20)
                .map(|i| row[col(&format!("f{i}"))].parse().unwrap())
                .collect();
            (f, [row[p0].parse().unwrap(), row[p1].parse().unwrap()])
        })
        .collect()
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn infer_body(name: &str, shape: &[usize], datatype: &str, data: Value) -> Value {
    json!({"id": "req-1", "inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]})
}

fn probabilities(v: &Value) -> Vec<f32> {
    let out = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

const RECORD: &str = r#"{"customer_id":"c-7","tenure_months":3,"monthly_charges":89.5,"total_charges":268.5,"complaints_90d":2,"support_calls_30d":4,"days_since_last_interaction":40,"region":"east","plan":"premium","contract":"month_to_month","autopay":false,"senior":true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_metadata_and_churn_infer_match_the_worker_pipeline() {
    let (srv, model) = start_one("churn", ServeSettings::default()).await;
    let a = srv.addr;
    assert_eq!(get(a, "/v2/health/live").await.status, 200);
    let meta = get(a, "/v2").await.json();
    assert_eq!(meta["name"], "argus");
    let md = get(a, "/v2/models/churn").await.json();
    validate("oip-v2-model-metadata.schema.json", &md);
    assert_eq!(md["versions"], json!(["1"]));
    assert_eq!(
        md["inputs"][0],
        json!({"name": "features", "datatype": "FP32", "shape": [-1, 20]})
    );
    assert_eq!(get(a, "/v2/models/churn/versions/1").await.status, 200);
    assert_eq!(get(a, "/v2/models/churn/ready").await.status, 200);
    assert_eq!(
        get(a, "/v2/models/churn/versions/1/ready").await.status,
        200
    );
    get(a, "/v2/models/churn/versions/2/ready")
        .await
        .assert_error(404, "version \"2\" of model \"churn\" is not serving");
    get(a, "/v2/models/fraud")
        .await
        .assert_error(404, "not served here");

    // All parity rows in one request: the bundle's batch-1 probabilities.
    let parity = churn_parity();
    assert_eq!(parity.len(), 200);
    let flat: Vec<f32> = parity.iter().flat_map(|(f, _)| f.iter().copied()).collect();
    let v = post_json(
        a,
        "/v2/models/churn/infer",
        &infer_body("features", &[200, 20], "FP32", json!(flat)),
    )
    .await
    .json();
    validate("oip-v2-infer-response.schema.json", &v);
    assert_eq!(
        (
            v["model_name"].as_str(),
            v["model_version"].as_str(),
            v["id"].as_str()
        ),
        (Some("churn"), Some("1"), Some("req-1"))
    );
    assert_eq!(v["outputs"][0]["shape"], json!([200, 2]));
    assert_eq!(
        v["outputs"][0]["parameters"]["labels"],
        json!(["stay", "churn"])
    );
    for ((_, want), got) in parity.iter().zip(probabilities(&v).chunks(2)) {
        assert!(
            (got[0] - want[0]).abs() < 1e-6 && (got[1] - want[1]).abs() < 1e-6,
            "{got:?} vs {want:?}"
        );
    }
    // Row by row from concurrent requests (batched together by the stage): the same.
    let answers = futures::future::join_all(parity.iter().take(32).map(|(f, _)| {
        let body = infer_body("features", &[1, 20], "FP32", json!([f]));
        async move { post_json(a, "/v2/models/churn/versions/1/infer", &body).await }
    }))
    .await;
    for ((_, want), ans) in parity.iter().zip(&answers) {
        let got = probabilities(&ans.json());
        assert!((got[1] - want[1]).abs() < 1e-6, "{got:?} vs {want:?}");
    }

    // A record (BYTES): the worker's feature assembly, the same answer as the classifier's.
    let record = argus_wire::bare::json_record(RECORD.as_bytes()).unwrap();
    let want = model.classify(&Payload::Record(record)).unwrap();
    let v = post_json(
        a,
        "/v2/models/churn/infer",
        &infer_body(
            "records",
            &[2],
            "BYTES",
            json!([RECORD, serde_json::from_str::<Value>(RECORD).unwrap()]),
        ),
    )
    .await
    .json();
    let got = probabilities(&v);
    assert_eq!(&got[..2], &want.probabilities[..]);
    assert_eq!(&got[2..], &want.probabilities[..]);
    assert_eq!(v["outputs"][1]["data"], json!(["churn", "churn"]), "{v}");

    // /v1/predict: the worker's prediction JSON for the same record.
    let ans = http(
        a,
        "POST",
        "/v1/predict",
        &[("Content-Type", "application/json"), ("argus-key", "c-7")],
        RECORD.as_bytes(),
    )
    .await;
    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
    let p = ans.json();
    validate("prediction.schema.json", &p);
    assert_eq!(p["input"]["topic"], "http");
    assert_eq!(p["input"]["key"], "c-7");
    assert_eq!(p["model"]["version"], "1");
    let churn = p["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "churn")
        .unwrap();
    assert_eq!(
        churn["score"].as_f64().unwrap() as f32,
        want.probabilities[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn camera_frames_score_as_the_worker_does_through_both_routes() {
    let (srv, model) = start_one("camera-person", ServeSettings::default()).await;
    let a = srv.addr;
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/camera-person/fixtures/reference.json"))
            .unwrap(),
    )
    .unwrap();
    let tolerance = reference["tolerance"].as_f64().unwrap() as f32;
    let frames = reference["frames"].as_array().unwrap();
    assert!(frames.len() >= 16);
    for frame in frames {
        let file = frame["file"].as_str().unwrap();
        let jpeg =
            std::fs::read(repo_root().join("models/camera-person/fixtures").join(file)).unwrap();
        let payload = Payload::Encoded {
            format: argus_wire::ImageFormat::Jpeg,
            bytes: jpeg.clone(),
        };
        let want = model.classify(&payload).unwrap();
        // The client preprocesses (here with the bundle's own code) and sends the tensor.
        let tensor = model.prepare(&payload).unwrap().data;
        let v = post_json(
            a,
            "/v2/models/camera-person/infer",
            &infer_body("image", &[1, 3, 32, 32], "FP32", json!(tensor)),
        )
        .await
        .json();
        let got = probabilities(&v);
        for (g, w) in got.iter().zip(&want.probabilities) {
            assert!(
                (g - w).abs() < 1e-6,
                "{file}: {got:?} vs {:?}",
                want.probabilities
            );
        }
        let p_person = frame["p_person"].as_f64().unwrap() as f32;
        assert!(
            (got[1] - p_person).abs() < tolerance,
            "{file}: {} vs reference {p_person}",
            got[1]
        );
        // The JPEG itself, decoded and preprocessed by the server as the worker does.
        let ans = http(
            a,
            "POST",
            "/v1/models/camera-person/predict",
            &[("Content-Type", "image/jpeg")],
            &jpeg,
        )
        .await;
        assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
        let p = ans.json();
        validate("prediction.schema.json", &p);
        let person = p["top"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["label"] == "person")
            .unwrap();
        assert!((person["score"].as_f64().unwrap() as f32 - want.probabilities[1]).abs() < 1e-6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_oversize_and_unknown_requests_get_json_errors_and_serving_goes_on() {
    let settings = ServeSettings {
        max_body_bytes: 64 * 1024,
        max_rows: 8,
        ..Default::default()
    };
    let (srv, _) = start_one("churn", settings).await;
    let a = srv.addr;
    let good = infer_body("features", &[1, 20], "FP32", json!(vec![0.0; 20]));
    let check_serving = || {
        let good = good.clone();
        async move {
            let ans = post_json(a, "/v2/models/churn/infer", &good).await;
            assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
        }
    };
    let infer = "/v2/models/churn/infer";
    let cases: Vec<(Answer, u16, &str)> = vec![
        (
            http(a, "POST", infer, &[], b"{\"inputs\": [").await,
            400,
            "malformed inference request JSON",
        ),
        (
            http(a, "POST", infer, &[], b"not json").await,
            400,
            "malformed",
        ),
        (
            post_json(a, infer, &json!({"inputs": "x"})).await,
            400,
            "malformed",
        ),
        (
            post_json(
                a,
                infer,
                &infer_body("features", &[1, 19], "FP32", json!(vec![0.0; 19])),
            )
            .await,
            400,
            "[N, 20]",
        ),
        (
            post_json(
                a,
                infer,
                &infer_body("features", &[1, 20], "FP32", json!(vec![0.0; 21])),
            )
            .await,
            400,
            "needs 20",
        ),
        (
            post_json(
                a,
                infer,
                &infer_body("features", &[1, 20], "INT32", json!(vec![0; 20])),
            )
            .await,
            400,
            "datatype INT32",
        ),
        (
            post_json(
                a,
                infer,
                &infer_body("features", &[9, 20], "FP32", json!(vec![0.0; 180])),
            )
            .await,
            400,
            "between 1 and 8",
        ),
        (
            post_json(
                a,
                infer,
                &infer_body("records", &[1], "BYTES", json!(["{\"tenure_months\": 1}"])),
            )
            .await,
            400,
            "record 0",
        ),
        (
            post_json(
                a,
                infer,
                &json!({"inputs": good["inputs"], "outputs": [{"name": "logits"}]}),
            )
            .await,
            400,
            "not an output",
        ),
        (
            post_json(a, "/v2/models/fraud/infer", &good).await,
            404,
            "not served here",
        ),
        (
            post_json(a, "/v2/models/churn/versions/7/infer", &good).await,
            404,
            "version \"7\" of model \"churn\" is not serving; serving: 1 (production)",
        ),
        (
            http(a, "POST", infer, &[], &vec![b' '; 100 * 1024]).await,
            413,
            "at most 65536 bytes",
        ),
        (
            http(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", "image/jpeg")],
                &vec![0xff; 100 * 1024],
            )
            .await,
            413,
            "serve.max_body_bytes",
        ),
        (
            http(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", "image/jpeg")],
                b"\xff\xd8 not a jpeg",
            )
            .await,
            400,
            "shape",
        ),
        (
            http(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", "application/json")],
                b"[1,2]",
            )
            .await,
            400,
            "decode",
        ),
        (
            http(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", "text/plain")],
                b"hi",
            )
            .await,
            415,
            "Content-Type",
        ),
        (get(a, "/v3/nothing").await, 404, "no such route"),
    ];
    for (ans, status, says) in cases {
        ans.assert_error(status, says);
        check_serving().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_gets_429_with_retry_after_and_a_slow_answer_504() {
    let (_, p) = pipeline(&bundle("churn", "1"));
    let models = Models::new(Serving::production(p.clone()));
    // Two slots, a model call of 300 ms: of 8 concurrent requests some must be refused.
    let settings = ServeSettings {
        max_concurrent: 2,
        max_batch: 1,
        max_wait: Duration::ZERO,
        ..Default::default()
    };
    let srv = start(models, settings, Duration::from_millis(300)).await;
    let body = infer_body("features", &[1, 20], "FP32", json!(vec![0.0; 20]));
    let answers = futures::future::join_all(
        (0..8).map(|_| post_json(srv.addr, "/v2/models/churn/infer", &body)),
    )
    .await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(
        ok + busy.len(),
        8,
        "only 200 or 429: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        ok >= 2 && !busy.is_empty(),
        "{ok} answered, {} refused",
        busy.len()
    );
    for b in busy {
        b.assert_error(429, "serve.max_concurrent");
        assert_eq!(b.header("retry-after"), Some("1"));
    }
    // Health answers under load (no slot needed); afterwards a request is answered.
    assert_eq!(get(srv.addr, "/v2/health/ready").await.status, 200);
    assert_eq!(
        post_json(srv.addr, "/v2/models/churn/infer", &body)
            .await
            .status,
        200
    );

    // A model call longer than the request timeout: 504, and the server goes on.
    let settings = ServeSettings {
        request_timeout: Duration::from_millis(100),
        max_wait: Duration::ZERO,
        ..Default::default()
    };
    let slow = start(
        Models::new(Serving::production(p)),
        settings,
        Duration::from_millis(400),
    )
    .await;
    let t = Instant::now();
    post_json(slow.addr, "/v2/models/churn/infer", &body)
        .await
        .assert_error(504, "serve.request_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(390),
        "answered at the timeout, not after the model: {:?}",
        t.elapsed()
    );
    assert_eq!(get(slow.addr, "/v2/health/live").await.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(slow.addr, "/v2/models/churn/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_swap_under_http_load_drops_no_request_and_each_answer_names_its_version() {
    let (_, v1) = pipeline(&bundle("churn", "1"));
    let (_, v2) = pipeline(&bundle("churn", "2"));
    let models = Models::new(Serving::production(v1));
    let srv = start(models.clone(), ServeSettings::default(), Duration::ZERO).await;
    let a = srv.addr;
    let row: Vec<f32> = churn_parity()[0].0.clone();
    let body = infer_body("features", &[1, 20], "FP32", json!([row]));
    let swapped_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let body = body.clone();
            let swapped_at = swapped_at.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..60 {
                    let sent = Instant::now();
                    let ans = post_json(a, "/v2/models/churn/infer", &body).await;
                    assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
                    let v = ans.json();
                    let after_swap = swapped_at.lock().unwrap().is_some_and(|t| sent > t);
                    seen.push((v["model_version"].as_str().unwrap().to_owned(), after_swap));
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();
    // Swap a third of the way through, while all six clients are sending.
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 120 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    models.swap(Serving {
        revision: 1,
        ..Serving::production(v2)
    });
    *swapped_at.lock().unwrap() = Some(Instant::now());
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert_eq!(all.len(), 360, "every request answered");
    assert!(all.iter().any(|(v, _)| v == "1"), "some before the swap");
    assert!(all.iter().any(|(v, _)| v == "2"), "some after the swap");
    for (v, after) in &all {
        assert!(v == "1" || v == "2");
        if *after {
            assert_eq!(v, "2", "a request sent after the swap was answered by v1");
        }
    }
    let md = get(a, "/v2/models/churn").await.json();
    assert_eq!(md["versions"], json!(["2"]));
    assert!(srv.server.is_ready());
}

/// The binary: `argus serve --model`, OIP routes and `/metrics` with the serve metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_oip_and_metrics_on_one_port() {
    let port = free_port();
    let _argus = spawn_argus(
        "serve",
        [
            "serve",
            "--model",
            repo_root().join("models/churn").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-body-bytes",
            "1000",
        ],
    );
    let a: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Ok(ans)) = tokio::time::timeout(Duration::from_secs(2), async {
            tokio::net::TcpStream::connect(a).await?;
            Ok::<_, std::io::Error>(get(a, "/v2/health/ready").await)
        })
        .await
        {
            if ans.status == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "argus serve not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = infer_body("features", &[1, 20], "FP32", json!(vec![0.0; 20]));
    assert_eq!(
        post_json(a, "/v2/models/churn/infer", &body).await.status,
        200
    );
    http(a, "POST", "/v2/models/churn/infer", &[], &[b' '; 2000])
        .await
        .assert_error(413, "at most 1000 bytes");
    let text = String::from_utf8(get(a, "/metrics").await.body).unwrap();
    use argus_worker::metrics::{
        SERVE_IN_FLIGHT, SERVE_REJECTED, SERVE_REQUESTS, SERVE_REQUEST_SECONDS,
    };
    let route = "route=\"/v2/models/{name}/infer\"";
    for line in [
        format!("{SERVE_REQUESTS}{{{route},code=\"200\"}} 1"),
        format!("{SERVE_REQUESTS}{{{route},code=\"413\"}} 1"),
        format!("{SERVE_REJECTED}{{reason=\"body_too_large\"}} 1"),
        format!("{SERVE_REJECTED}{{reason=\"overloaded\"}} 0"),
        format!("{SERVE_IN_FLIGHT} 0"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(
        text.contains(&format!("{SERVE_REQUEST_SECONDS}_bucket{{{route}")),
        "{text}"
    );
}
