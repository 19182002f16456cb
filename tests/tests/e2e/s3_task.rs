//! The handler against moto: every scenario of the task contract, with real HTTP S3.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{StorageClass, Tag, Tagging};
use batch_contract::event::{ResultCode, TaskResult};
use batch_contract::key::encode_key;
use batch_handler::settings::Settings;
use batch_handler::task::Hooks;
use batch_handler::transcode::Transcoder;
use batch_handler::{Codec, Downmix, Handler, Options};
use e2e_tests::*;
use serde_json::{Value, json};

struct Env {
    s3: Client,
}

fn env(test: &str) -> Option<Env> {
    moto_endpoint(test).map(|url| Env {
        s3: s3_client(&url),
    })
}

impl Env {
    fn handler(&self, settings: Settings) -> Handler {
        Handler::new(self.s3.clone(), settings)
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put")
            .version_id()
            .map(str::to_string)
    }

    async fn get(&self, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
            .expect("get");
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    }

    async fn versions(&self, bucket: &str, key: &str) -> usize {
        let out = self
            .s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .expect("list versions");
        out.versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .count()
    }

    /// Sets the object's tag set to the one tag `k=v`.
    async fn tag(&self, bucket: &str, key: &str, k: &str, v: &str) {
        self.s3
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .tagging(
                Tagging::builder()
                    .tag_set(Tag::builder().key(k).value(v).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    async fn tags(&self, bucket: &str, key: &str) -> HashMap<String, String> {
        let out = self
            .s3
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("tags");
        out.tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    async fn run(&self, handler: &Handler, event: &Value) -> Vec<TaskResult> {
        let response = handler.handle(event, None).await;
        assert_eq!(
            response.results.len(),
            event["tasks"].as_array().unwrap().len(),
            "one result per task"
        );
        assert_eq!(
            serde_json::to_value(&response).unwrap()["treatMissingKeysAs"],
            "PermanentFailure"
        );
        response.results
    }

    /// Puts `original` at `key` tagged `team=support` and converts it in place with `handler`:
    /// the task succeeds as `converted` to `codec`, the original version stays intact and the
    /// summary's `bytesOut` is the new object's size. Returns the summary and the new object.
    async fn convert_in_place(
        &self,
        handler: &Handler,
        bucket: &str,
        key: &str,
        original: &[u8],
        codec: &str,
    ) -> (Value, Vec<u8>) {
        let v1 = self.put(bucket, key, original.to_vec()).await.unwrap();
        self.tag(bucket, key, "team", "support").await;
        let results = self
            .run(handler, &event_v1(bucket, &[(&encode_key(key), Some(&v1))]))
            .await;
        assert_eq!(
            results[0].result_code,
            ResultCode::Succeeded,
            "{}",
            results[0].result_string
        );
        let s = summary(&results[0]);
        assert_eq!(
            (s["action"].as_str(), s["codec"].as_str()),
            (Some("converted"), Some(codec))
        );
        assert_eq!(
            self.get(bucket, key, Some(&v1)).await,
            original,
            "original intact"
        );
        let converted = self.get(bucket, key, None).await;
        assert_eq!(s["bytesOut"], converted.len());
        (s, converted)
    }

    /// What a converted object keeps: its `content_type`, the Glacier IR class and the tag put by
    /// `convert_in_place`. Returns its `transcoded-by` mark.
    async fn converted_head(&self, bucket: &str, key: &str, content_type: &str) -> String {
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some(content_type));
        assert_eq!(head.storage_class(), Some(&StorageClass::GlacierIr));
        assert_eq!(
            self.tags(bucket, key).await.get("team").map(String::as_str),
            Some("support")
        );
        head.metadata().unwrap()["transcoded-by"].clone()
    }

    /// The same key again, as another job: skipped, no new version written.
    async fn assert_skipped_again(&self, handler: &Handler, bucket: &str, key: &str) {
        let again = self
            .run(
                handler,
                &as_job(event_v1(bucket, &[(&encode_key(key), None)]), "again"),
            )
            .await;
        assert_eq!(summary(&again[0])["action"], "skipped");
        assert_eq!(self.versions(bucket, key).await, 2);
    }
}

fn expected(input: &[u8], options: Options) -> Vec<u8> {
    let mut t = Transcoder::new(options, input.len() as u64);
    let mut out = Vec::new();
    t.feed(input, &mut out).expect("feed");
    t.finish().expect("finish");
    out
}

fn summary(r: &TaskResult) -> Value {
    serde_json::from_str(&r.result_string)
        .unwrap_or_else(|e| panic!("result string is not JSON ({e}): {}", r.result_string))
}

fn assert_failed(r: &TaskResult, code: ResultCode, needle: &str) {
    assert_eq!(r.result_code, code, "{}", r.result_string);
    assert!(
        r.result_string.contains(needle),
        "{:?} should mention {needle:?}",
        r.result_string
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_place_on_a_versioned_bucket_keeps_the_original_and_writes_alaw() {
    let Some(env) = env("in_place_on_a_versioned_bucket") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "inplace", true).await;
    let key = "connect/acme/CallRecordings/2024/01/26/c0ffee_20240126T03:07_UTC.wav";
    let original = connect_wav(12.0);
    env.s3
        .put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(original.clone()))
        .content_type("audio/x-wav")
        .metadata("contact-id", "c0ffee")
        .cache_control("max-age=60")
        .tagging("team=support&retention=7y")
        .send()
        .await
        .unwrap();
    let head = env
        .s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let (v1, etag1) = (
        head.version_id().unwrap().to_string(),
        head.e_tag().unwrap().to_string(),
    );

    let handler = env.handler(Settings::default());
    let results = env
        .run(
            &handler,
            &event_v1(&bucket, &[(&encode_key(key), Some(&v1))]),
        )
        .await;
    assert_eq!(
        results[0].result_code,
        ResultCode::Succeeded,
        "{}",
        results[0].result_string
    );
    let s = summary(&results[0]);
    assert_eq!(s["action"], "converted");
    assert_eq!(s["codec"], "alaw");
    assert_eq!(s["bytesIn"], original.len());
    assert_eq!(s["outputKey"], key);
    assert_eq!(s["durationSeconds"], 12.0);

    // The original version is intact, byte for byte.
    assert_eq!(env.get(&bucket, key, Some(&v1)).await, original);
    assert_eq!(env.versions(&bucket, key).await, 2);
    // The new current version is exactly what the transcoder produces, a quarter of the size.
    let converted = env.get(&bucket, key, None).await;
    assert_eq!(converted, expected(&original, Options::default()));
    assert_eq!(s["bytesOut"], converted.len());
    assert_eq!(
        u16::from_le_bytes([converted[20], converted[21]]),
        6,
        "A-law format tag"
    );
    assert!(converted.len() * 4 < original.len() + 4 * 58);
    let head = env
        .s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.storage_class(), Some(&StorageClass::GlacierIr));
    assert_eq!(head.content_type(), Some("audio/wav"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(s["outputVersionId"].as_str(), head.version_id());
    let meta = head.metadata().unwrap();
    assert_eq!(meta["contact-id"], "c0ffee", "user metadata kept");
    assert_eq!(meta["original-format"], "pcm_s16le 8000Hz 2ch");
    assert_eq!(meta["original-size"], original.len().to_string());
    assert_eq!(meta["original-etag"], etag1.trim_matches('"'));
    assert_eq!(meta["original-version-id"], v1);
    assert!(meta["transcoded-by"].contains("alaw average"));
    let tags = env.tags(&bucket, key).await;
    assert_eq!(tags.get("team").map(String::as_str), Some("support"));
    assert_eq!(tags.get("retention").map(String::as_str), Some("7y"));
    assert_eq!(tags.get("converted").map(String::as_str), Some("true"));

    // A second job (by the same version id or by key) changes nothing.
    for task in [
        (encode_key(key), None),
        (
            encode_key(key),
            Some(head.version_id().unwrap().to_string()),
        ),
    ] {
        let results = env
            .run(
                &handler,
                &as_job(
                    event_v1(&bucket, &[(&task.0, task.1.as_deref())]),
                    "second-job",
                ),
            )
            .await;
        assert_eq!(results[0].result_code, ResultCode::Succeeded);
        let s = summary(&results[0]);
        assert_eq!(s["action"], "skipped", "{s}");
        assert!(
            s["reason"].as_str().unwrap().contains("already converted"),
            "{s}"
        );
    }
    assert_eq!(
        env.versions(&bucket, key).await,
        2,
        "no new version on rerun"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn object_changed_between_read_and_write_is_a_temporary_failure_and_nothing_is_overwritten() {
    let Some(env) = env("object_changed_between_read_and_write") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "race", true).await;
    let key = "rec/race.wav";
    env.put(&bucket, key, connect_wav(3.0)).await;
    let newer = connect_wav(1.0);
    let s3 = env.s3.clone();
    let (b, n) = (bucket.clone(), newer.clone());
    let hooks = Hooks {
        before_write: Some(Arc::new(move |task| {
            let (s3, b, n) = (s3.clone(), b.clone(), n.clone());
            Box::pin(async move {
                s3.put_object()
                    .bucket(&b)
                    .key(&task.key)
                    .body(ByteStream::from(n))
                    .send()
                    .await
                    .expect("concurrent writer");
            })
        })),
    };
    let handler = env.handler(Settings::default()).with_hooks(hooks);
    let results = env.run(&handler, &event_v1(&bucket, &[(key, None)])).await;
    assert_failed(
        &results[0],
        ResultCode::TemporaryFailure,
        "changed while it was converted",
    );
    assert_eq!(
        env.get(&bucket, key, None).await,
        newer,
        "the concurrent write survives"
    );
    assert_eq!(
        env.versions(&bucket, key).await,
        2,
        "original + concurrent write, nothing of ours"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unversioned_bucket_is_refused_unless_the_operator_opted_in() {
    let Some(env) = env("unversioned_bucket_is_refused") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "unversioned", false).await;
    let original = connect_wav(2.0);
    env.put(&bucket, "a.wav", original.clone()).await;
    let results = env
        .run(
            &env.handler(Settings::default()),
            &event_v1(&bucket, &[("a.wav", None)]),
        )
        .await;
    assert_failed(
        &results[0],
        ResultCode::PermanentFailure,
        "is not versioned",
    );
    assert_eq!(env.get(&bucket, "a.wav", None).await, original);

    let opted_in = Settings {
        allow_unversioned_overwrite: true,
        ..Settings::default()
    };
    let results = env
        .run(
            &env.handler(opted_in),
            &event_v1(&bucket, &[("a.wav", None)]),
        )
        .await;
    assert_eq!(
        results[0].result_code,
        ResultCode::Succeeded,
        "{}",
        results[0].result_string
    );
    assert_eq!(
        env.get(&bucket, "a.wav", None).await,
        expected(&original, Options::default())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_prefix_mode_leaves_the_original_untouched() {
    let Some(env) = env("destination_prefix_mode") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "dest", false).await;
    let original = connect_wav(2.0);
    env.put(&bucket, "in/call.wav", original.clone()).await;
    let settings =
        Settings::from_lookup(|k| (k == "DEST_PREFIX").then(|| "alaw/".to_string())).unwrap();
    let handler = env.handler(settings);
    let results = env
        .run(&handler, &event_v1(&bucket, &[("in/call.wav", None)]))
        .await;
    assert_eq!(
        results[0].result_code,
        ResultCode::Succeeded,
        "{}",
        results[0].result_string
    );
    assert_eq!(summary(&results[0])["outputKey"], "alaw/in/call.wav");
    assert_eq!(
        env.get(&bucket, "in/call.wav", None).await,
        original,
        "original untouched"
    );
    assert!(
        env.tags(&bucket, "in/call.wav").await.is_empty(),
        "original not tagged"
    );
    assert_eq!(
        env.get(&bucket, "alaw/in/call.wav", None).await,
        expected(&original, Options::default())
    );
    assert_eq!(
        env.tags(&bucket, "alaw/in/call.wav")
            .await
            .get("converted")
            .map(String::as_str),
        Some("true")
    );
    // Another job: the destination exists, so nothing is overwritten.
    let results = env
        .run(
            &handler,
            &as_job(event_v1(&bucket, &[("in/call.wav", None)]), "second-job"),
        )
        .await;
    let s = summary(&results[0]);
    assert_eq!(s["action"], "skipped");
    assert!(s["reason"].as_str().unwrap().contains("destination"), "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_keys_round_trip_from_manifest_encoding_to_the_object() {
    let Some(env) = env("odd_keys_round_trip") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "oddkeys", true).await;
    let long = format!("connect/long/{}.wav", "x".repeat(1000));
    let keys = [
        "with space/call 1.wav",
        "plus+sign/a+b.wav",
        "percent%41/100%.wav",
        "colon/c0ffee_20240126T03:07_UTC.wav",
        "unicode/café-日本語-通話.wav",
        "comma,quote\"amp&eq=.wav",
        long.as_str(),
    ];
    let wav = connect_wav(0.5);
    for k in keys {
        env.put(&bucket, k, wav.clone()).await;
    }
    let encoded: Vec<String> = keys.iter().map(|k| encode_key(k)).collect();
    // Inventory reports write a space as '+': the handler must read that too.
    let inventory_style = "with+space/call+1.wav";
    let mut tasks: Vec<(&str, Option<&str>)> = encoded.iter().map(|k| (k.as_str(), None)).collect();
    let handler = env.handler(Settings::default());
    let results = env.run(&handler, &event_v1(&bucket, &tasks)).await;
    for (r, k) in results.iter().zip(keys) {
        assert_eq!(
            r.result_code,
            ResultCode::Succeeded,
            "{k}: {}",
            r.result_string
        );
        assert_eq!(summary(r)["action"], "converted", "{k}");
        assert_eq!(
            env.get(&bucket, k, None).await,
            expected(&wav, Options::default()),
            "{k}"
        );
    }
    tasks = vec![(inventory_style, None)];
    let results = env
        .run(&handler, &as_job(event_v1(&bucket, &tasks), "second-job"))
        .await;
    assert_eq!(
        summary(&results[0])["action"],
        "skipped",
        "'+' decoded to the space key, already converted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_objects_fail_permanently_with_the_reason() {
    let Some(env) = env("bad_objects_fail_permanently") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "bad", true).await;
    let full = connect_wav(1.0);
    env.put(
        &bucket,
        "notwav.mp3",
        b"ID3\x04\x00\x00\x00\x00\x00\x00 some mp3 frames".to_vec(),
    )
    .await;
    env.put(&bucket, "truncated.wav", full[..30].to_vec()).await;
    env.put(&bucket, "empty.wav", Vec::new()).await;
    // A rate no capture uses (16 kHz and the other common ones are resampled).
    let mut odd_rate = full.clone();
    odd_rate[24..28].copy_from_slice(&12345u32.to_le_bytes());
    env.put(&bucket, "odd-rate.wav", odd_rate).await;
    let mut tagged = Vec::new();
    for i in 0..10 {
        tagged.push(
            Tag::builder()
                .key(format!("k{i}"))
                .value("v")
                .build()
                .unwrap(),
        );
    }
    env.put(&bucket, "ten-tags.wav", full.clone()).await;
    env.s3
        .put_object_tagging()
        .bucket(&bucket)
        .key("ten-tags.wav")
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(tagged))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let event = event_v1(
        &bucket,
        &[
            ("missing.wav", None),
            ("notwav.mp3", None),
            ("truncated.wav", None),
            ("empty.wav", None),
            ("odd-rate.wav", None),
            ("ten-tags.wav", None),
            ("bad%zzkey.wav", None),
        ],
    );
    let results = env.run(&env.handler(Settings::default()), &event).await;
    let expect = [
        "object not found",
        "not a WAV file",
        "truncated WAV",
        "empty object",
        "sample rate 12345 Hz is not resampled",
        "no room for the tag converted=true",
        "key is not URL-encoded",
    ];
    for (r, needle) in results.iter().zip(expect) {
        assert_failed(r, ResultCode::PermanentFailure, needle);
    }
    assert_eq!(
        env.get(&bucket, "truncated.wav", None).await,
        full[..30].to_vec(),
        "bad input untouched"
    );
    assert_eq!(env.versions(&bucket, "notwav.mp3").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn already_g711_objects_are_skipped_not_re_encoded() {
    let Some(env) = env("already_g711_objects_are_skipped") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "already", true).await;
    let alaw = expected(&connect_wav(1.0), Options::default());
    let mulaw = expected(
        &connect_wav(1.0),
        Options {
            codec: Codec::Mulaw,
            downmix: Downmix::Average,
        },
    );
    env.put(&bucket, "a.wav", alaw).await;
    env.put(&bucket, "u.wav", mulaw).await;
    let results = env
        .run(
            &env.handler(Settings::default()),
            &event_v1(&bucket, &[("a.wav", None), ("u.wav", None)]),
        )
        .await;
    for (r, codec) in results.iter().zip(["alaw", "mulaw"]) {
        assert_eq!(r.result_code, ResultCode::Succeeded);
        let s = summary(r);
        assert_eq!(s["action"], "skipped");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("already {codec}")),
            "{s}"
        );
    }
    assert_eq!(env.versions(&bucket, "a.wav").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_2_user_arguments_override_the_settings() {
    let Some(env) = env("schema_2_user_arguments") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "schema2", false).await;
    let wav = connect_wav(2.0);
    env.put(&bucket, "call.wav", wav.clone()).await;
    let args = json!({"codec": "mulaw", "downmix": "right", "destPrefix": "agent/", "storageClass": "STANDARD_IA", "tagKey": "shrunk"});
    let handler = env.handler(Settings::default());
    let results = env
        .run(&handler, &event_v2(&bucket, &[("call.wav", None)], args))
        .await;
    assert_eq!(
        results[0].result_code,
        ResultCode::Succeeded,
        "{}",
        results[0].result_string
    );
    let s = summary(&results[0]);
    assert_eq!(
        (s["codec"].as_str(), s["downmix"].as_str()),
        (Some("mulaw"), Some("right"))
    );
    let out = env.get(&bucket, "agent/call.wav", None).await;
    assert_eq!(
        out,
        expected(
            &wav,
            Options {
                codec: Codec::Mulaw,
                downmix: Downmix::Right
            }
        )
    );
    let head = env
        .s3
        .head_object()
        .bucket(&bucket)
        .key("agent/call.wav")
        .send()
        .await
        .unwrap();
    assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
    assert!(
        env.tags(&bucket, "agent/call.wav")
            .await
            .contains_key("shrunk")
    );

    // A typo in a job argument fails every task of the invocation, before touching S3.
    let results = env
        .run(
            &handler,
            &event_v2(
                &bucket,
                &[("call.wav", None), ("x.wav", None)],
                json!({"dowmix": "sum"}),
            ),
        )
        .await;
    for r in &results {
        assert_failed(
            r,
            ResultCode::PermanentFailure,
            "user argument dowmix: unknown",
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_schema_version_fails_every_task_without_touching_s3() {
    let Some(env) = env("unknown_schema_version") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "schema3", true).await;
    env.put(&bucket, "a.wav", connect_wav(0.5)).await;
    let mut event = event_v1(&bucket, &[("a.wav", None), ("b.wav", None)]);
    event["invocationSchemaVersion"] = json!("3.0");
    let response = env.handler(Settings::default()).handle(&event, None).await;
    assert_eq!(response.invocation_schema_version, "3.0");
    assert_eq!(response.results.len(), 2);
    for r in &response.results {
        assert_failed(
            r,
            ResultCode::PermanentFailure,
            "unknown invocationSchemaVersion",
        );
    }
    assert_eq!(env.versions(&bucket, "a.wav").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_unfinished_at_the_deadline_are_temporary_failures() {
    let Some(env) = env("tasks_unfinished_at_the_deadline") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "deadline", true).await;
    let wav = connect_wav(1.0);
    env.put(&bucket, "a.wav", wav.clone()).await;
    let handler = env.handler(Settings::default());
    let response = handler
        .handle(
            &event_v1(&bucket, &[("a.wav", None)]),
            Some(tokio::time::Instant::now()),
        )
        .await;
    assert_failed(
        &response.results[0],
        ResultCode::TemporaryFailure,
        "deadline",
    );
    assert_eq!(env.get(&bucket, "a.wav", None).await, wav);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_tasks_in_one_invocation_each_get_their_own_result_in_order() {
    let Some(env) = env("many_tasks_in_one_invocation") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "many", true).await;
    let keys: Vec<String> = (0..12).map(|i| format!("calls/{i:02}.wav")).collect();
    for k in &keys {
        env.put(&bucket, k, connect_wav(0.25)).await;
    }
    let mut tasks: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
    tasks.insert(5, ("calls/absent.wav", None));
    let results = env
        .run(
            &env.handler(Settings::default()),
            &event_v1(&bucket, &tasks),
        )
        .await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.task_id, format!("task-{i}"));
        let want = if i == 5 {
            ResultCode::PermanentFailure
        } else {
            ResultCode::Succeeded
        };
        assert_eq!(r.result_code, want, "{i}: {}", r.result_string);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_pinned_to_a_superseded_version_fails_permanently_with_the_reason() {
    let Some(env) = env("a_task_pinned_to_a_superseded_version") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "superseded", true).await;
    let old = env
        .put(&bucket, "call.wav", connect_wav(1.0))
        .await
        .unwrap();
    let newer = connect_wav(2.0);
    env.put(&bucket, "call.wav", newer.clone()).await;
    let results = env
        .run(
            &env.handler(Settings::default()),
            &event_v1(&bucket, &[("call.wav", Some(&old))]),
        )
        .await;
    assert_failed(
        &results[0],
        ResultCode::PermanentFailure,
        &format!("version {old} is no longer the current version"),
    );
    assert_eq!(
        env.get(&bucket, "call.wav", None).await,
        newer,
        "the newer version is untouched"
    );
    assert_eq!(env.versions(&bucket, "call.wav").await, 2);
}

/// Requests moto logged for `bucket`, by kind (`GET versioning`, `GET object`, `PUT object`...).
fn requests_logged(log: &str, bucket: &str) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut kinds = HashMap::new();
    let needle = format!(" /{bucket}");
    for line in text.lines() {
        // werkzeug: 127.0.0.1 - - [date] "GET /bucket/key?x-id=GetObject HTTP/1.1" 200 -
        let Some(request) = line.split('"').nth(1) else {
            continue;
        };
        let Some(at) = request.find(&needle) else {
            continue;
        };
        let method = &request[..at];
        let target = request[at + needle.len()..].split(' ').next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let what = if query.starts_with("versioning") {
            "versioning"
        } else if query.starts_with("tagging") {
            "tagging"
        } else if path.len() > 1 {
            "object"
        } else {
            "bucket"
        };
        *kinds.entry(format!("{method} {what}")).or_default() += 1;
    }
    kinds
}

#[tokio::test(flavor = "multi_thread")]
async fn a_converted_object_costs_two_requests_three_with_tags_counted_at_the_server() {
    let test = "requests_per_object";
    let Some(env) = env(test) else {
        return;
    };
    let Some(log) = std::env::var("MOTO_LOG").ok().filter(|l| !l.is_empty()) else {
        missing("moto's access log (MOTO_LOG)", test);
        return;
    };
    let bucket = new_bucket(&env.s3, "requests", true).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let key = format!("calls/{i} +%.wav");
        env.put(&bucket, &key, connect_wav(0.5)).await;
        tasks.push(key);
    }
    for key in &tasks[5..] {
        let tagging = Tagging::builder()
            .tag_set(Tag::builder().key("team").value("a").build().unwrap())
            .build()
            .unwrap();
        env.s3
            .put_object_tagging()
            .bucket(&bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .unwrap();
    }
    let setup = requests_logged(&log, &bucket);
    if setup.is_empty() {
        missing(
            "moto's access log of this server (MOTO_LOG names another)",
            test,
        );
        return;
    }
    let encoded: Vec<String> = tasks.iter().map(|k| encode_key(k)).collect();
    let refs: Vec<(&str, Option<&str>)> = encoded.iter().map(|k| (k.as_str(), None)).collect();
    let results = env
        .run(&env.handler(Settings::default()), &event_v1(&bucket, &refs))
        .await;
    for r in &results {
        assert_eq!(r.result_code, ResultCode::Succeeded, "{}", r.result_string);
    }
    // werkzeug logs a request after answering it: wait until all of them are in.
    let mut by_task = HashMap::new();
    for _ in 0..50 {
        let now = requests_logged(&log, &bucket);
        by_task = now
            .iter()
            .map(|(k, n)| (k.clone(), n - setup.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if by_task.get("PUT object") == Some(&10) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let want: HashMap<String, usize> = [
        ("GET versioning", 1), // once per bucket for all ten tasks
        ("GET object", 10),
        ("PUT object", 10),
        ("GET tagging", 5), // only where the GET's x-amz-tagging-count says there are tags
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(by_task, want, "requests the handler made, by kind");
}

/// A PUT that S3 committed but whose answer never arrived: the task's retry (same job, same task)
/// meets 412 on the pinned original and must recognise the current version as its own
/// conversion of exactly that original, and say so; another job says it was done before; a
/// genuinely newer version stays a failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_lost_answer_reports_its_own_earlier_conversion() {
    let Some(env) = env("a_retry_after_a_lost_answer") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "lost-answer", true).await;
    let original = connect_wav(1.0);
    let v1 = env
        .put(&bucket, "a b+c.wav", original.clone())
        .await
        .unwrap();
    let handler = env.handler(Settings::default());
    let event = event_v1(&bucket, &[(&encode_key("a b+c.wav"), Some(&v1))]);
    let first = env.run(&handler, &event).await;
    assert_eq!(first[0].result_code, ResultCode::Succeeded);
    let first = summary(&first[0]);
    assert_eq!(first["action"], "converted", "{first}");
    // The answer was lost: the service retries the very same task.
    let retry = env.run(&handler, &event).await;
    assert_eq!(
        retry[0].result_code,
        ResultCode::Succeeded,
        "{}",
        retry[0].result_string
    );
    let retry = summary(&retry[0]);
    assert_eq!(retry["action"], "converted", "{retry}");
    assert!(
        retry["reason"]
            .as_str()
            .unwrap()
            .contains("earlier attempt"),
        "{retry}"
    );
    for field in [
        "outputVersionId",
        "bytesIn",
        "bytesOut",
        "durationSeconds",
        "codec",
        "downmix",
    ] {
        assert_eq!(retry[field], first[field], "{field}: {retry} vs {first}");
    }
    assert_eq!(
        env.versions(&bucket, "a b+c.wav").await,
        2,
        "no second conversion"
    );
    assert_eq!(
        env.get(&bucket, "a b+c.wav", Some(&v1)).await,
        original,
        "original intact"
    );
    // Another job over the same manifest: done before, by someone else; not counted again.
    let other = env.run(&handler, &as_job(event.clone(), "job-2")).await;
    let other = summary(&other[0]);
    assert_eq!(other["action"], "skipped", "{other}");
    assert!(
        other["reason"]
            .as_str()
            .unwrap()
            .contains("conversion of this very original"),
        "{other}"
    );
    // A genuinely different newer version: the retry fails, naming it, and overwrites nothing.
    let newer = connect_wav(0.5);
    let v3 = env.put(&bucket, "a b+c.wav", newer.clone()).await.unwrap();
    let late = env.run(&handler, &event).await;
    assert_failed(
        &late[0],
        ResultCode::PermanentFailure,
        &format!("version {v1} is no longer the current version ({v3} is)"),
    );
    assert_eq!(env.get(&bucket, "a b+c.wav", None).await, newer);
}

/// The same recognition in the two other modes: in place on an unversioned bucket the operator
/// opted into, and a destination prefix (where a foreign object at the destination is refused).
#[tokio::test(flavor = "multi_thread")]
async fn own_earlier_conversions_are_recognised_unversioned_and_in_destination_mode() {
    let Some(env) = env("own_earlier_conversions_other_modes") else {
        return;
    };
    let bucket = new_bucket(&env.s3, "lost-answer-unv", false).await;
    env.put(&bucket, "call.wav", connect_wav(0.5)).await;
    let opted_in =
        Settings::from_lookup(|k| (k == "ALLOW_UNVERSIONED_OVERWRITE").then(|| "true".to_string()))
            .unwrap();
    let handler = env.handler(opted_in);
    let event = event_v1(&bucket, &[("call.wav", None)]);
    assert_eq!(
        summary(&env.run(&handler, &event).await[0])["action"],
        "converted"
    );
    let retry = summary(&env.run(&handler, &event).await[0]);
    assert_eq!(retry["action"], "converted", "{retry}");
    assert!(
        retry["reason"]
            .as_str()
            .unwrap()
            .contains("earlier attempt")
    );
    let other = summary(&env.run(&handler, &as_job(event, "job-2")).await[0]);
    assert_eq!(other["action"], "skipped", "{other}");

    let dest =
        Settings::from_lookup(|k| (k == "DEST_PREFIX").then(|| "alaw/".to_string())).unwrap();
    let handler = env.handler(dest);
    env.put(&bucket, "d/call.wav", connect_wav(0.5)).await;
    let event = event_v1(&bucket, &[("d/call.wav", None)]);
    let first = summary(&env.run(&handler, &event).await[0]);
    assert_eq!(first["action"], "converted", "{first}");
    let retry = summary(&env.run(&handler, &event).await[0]);
    assert_eq!(retry["action"], "converted", "{retry}");
    assert_eq!(retry["bytesOut"], first["bytesOut"]);
    // A destination that holds something else is not ours to claim, nor to overwrite.
    env.put(&bucket, "e/call.wav", connect_wav(0.5)).await;
    env.put(&bucket, "alaw/e/call.wav", b"someone else's".to_vec())
        .await;
    let foreign = env
        .run(&handler, &event_v1(&bucket, &[("e/call.wav", None)]))
        .await;
    assert_failed(
        &foreign[0],
        ResultCode::PermanentFailure,
        "not this tool's conversion of this original",
    );
    assert_eq!(
        env.get(&bucket, "alaw/e/call.wav", None).await,
        b"someone else's".to_vec()
    );
}

/// `codec=flac` in place: the original version intact, the new one FLAC (`audio/flac`, the
/// original's metadata, tags and the target class), which the reference `flac` tool decodes
/// bit-exactly to the input's PCM, both channels kept; a 16 kHz recording keeps its rate; the
/// FLAC object is then recognised as converted, by its marker and, without one, by its header.
#[tokio::test(flavor = "multi_thread")]
async fn flac_in_place_decodes_bit_exactly_with_the_flac_tool() {
    let test = "flac_in_place";
    let Some(env) = env(test) else {
        return;
    };
    if !require_tool("flac", test) {
        return;
    }
    let bucket = new_bucket(&env.s3, "flac", true).await;
    let dir = std::env::temp_dir().join(format!("flac-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let narrow = connect_wav(3.0);
    // The same talkers at 16 kHz: a softphone capture.
    let wide = call_at(16000, 3.0);
    let mut settings = Settings::default();
    settings.encoding = batch_handler::settings::Encoding::Flac;
    settings.options.downmix = Downmix::Stereo;
    let handler = env.handler(settings);
    for (key, original, rate) in [
        ("rec/narrow call.wav", &narrow, 8000u32),
        ("rec/wide+call.wav", &wide, 16000),
    ] {
        let (_, flac) = env
            .convert_in_place(&handler, &bucket, key, original, "flac")
            .await;
        assert_eq!(&flac[..4], b"fLaC");
        assert!(flac.len() < original.len());
        let mark = env.converted_head(&bucket, key, "audio/flac").await;
        assert!(mark.contains("flac stereo"), "{mark}");
        // The reference decoder: MD5 checked, and the same PCM as the original's data chunk.
        let (f, back) = (
            dir.join(format!("{rate}.flac")),
            dir.join(format!("{rate}.wav")),
        );
        std::fs::write(&f, &flac).unwrap();
        run_tool(
            std::process::Command::new("flac")
                .args(["-d", "-f", "-s", "-o"])
                .arg(&back)
                .arg(&f),
        );
        let decoded = std::fs::read(&back).unwrap();
        assert_eq!(
            u32::from_le_bytes(decoded[24..28].try_into().unwrap()),
            rate
        );
        assert_eq!(
            u16::from_le_bytes([decoded[22], decoded[23]]),
            2,
            "both channels"
        );
        assert_eq!(&decoded[44..], &original[44..], "bit-exact");
        env.assert_skipped_again(&handler, &bucket, key).await;
    }
    // A FLAC object without our marker is recognised by its header, for any codec.
    let foreign = std::fs::read(dir.join("8000.flac")).unwrap();
    env.put(&bucket, "rec/foreign.wav", foreign).await;
    for handler in [env.handler(Settings::default()), handler] {
        let results = env
            .run(&handler, &event_v1(&bucket, &[("rec/foreign.wav", None)]))
            .await;
        let s = summary(&results[0]);
        assert_eq!(s["action"], "skipped", "{s}");
        assert!(
            s["reason"].as_str().unwrap().contains("already flac"),
            "{s}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A two-talker recording at `rate` Hz (the synthetic call's frames repeated to that rate: a
/// softphone capture), as a PCM16 WAV.
fn call_at(rate: u32, seconds: f64) -> Vec<u8> {
    let frames = connect_pcm(seconds);
    let times = (rate / 8000) as usize;
    let mut w = Vec::new();
    batch_handler::decode::write_pcm16_header(&mut w, 2, rate, (frames.len() * times) as u64)
        .unwrap();
    for (l, r) in &frames {
        for _ in 0..times {
            w.extend_from_slice(&l.to_le_bytes());
            w.extend_from_slice(&r.to_le_bytes());
        }
    }
    w
}

/// Mean energy of channel `ch` of interleaved stereo PCM16 bytes over frames `from..to`.
fn energy(pcm: &[u8], ch: usize, from: usize, to: usize) -> f64 {
    (from..to)
        .map(|i| {
            let at = i * 4 + ch * 2;
            f64::from(i16::from_le_bytes([pcm[at], pcm[at + 1]])).powi(2)
        })
        .sum::<f64>()
        / (to - from) as f64
}

/// `codec=opus` in place, stereo: the original version intact, the new one Ogg Opus
/// (`audio/ogg`, metadata, tags and class as for G.711) that `opusdec` and ffmpeg decode to the
/// input's length with two channels that stay apart (the agent is not heard on the customer's
/// channel); a 16 kHz recording is coded at 16 kHz; the Ogg object is then recognised as
/// converted. G.711 from 16 kHz: resampled to 8 kHz in place, to the length
/// `ceil(frames / 2)`, which ffmpeg reads back.
#[tokio::test(flavor = "multi_thread")]
async fn opus_and_resampled_alaw_in_place_decode_with_the_reference_tools() {
    let test = "opus_in_place";
    let Some(env) = env(test) else {
        return;
    };
    if !require_tool("opusdec", test) || !require_tool("ffmpeg", test) {
        return;
    }
    let bucket = new_bucket(&env.s3, "opus", true).await;
    let dir = std::env::temp_dir().join(format!("opus-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = Settings::default();
    settings.encoding = batch_handler::settings::Encoding::Opus { bitrate: 16000 };
    settings.options.downmix = Downmix::Stereo;
    let handler = env.handler(settings);
    for (key, rate) in [("rec/opus call.wav", 8000u32), ("rec/wide+opus.wav", 16000)] {
        let original = call_at(rate, 3.0);
        let frames = (original.len() - 44) / 4;
        let (_, ogg) = env
            .convert_in_place(&handler, &bucket, key, &original, "opus")
            .await;
        assert_eq!(&ogg[..4], b"OggS");
        assert!(
            ogg.len() * 8 < original.len(),
            "{} of {}",
            ogg.len(),
            original.len()
        );
        let mark = env.converted_head(&bucket, key, "audio/ogg").await;
        assert!(mark.ends_with("opus stereo 16000bps"), "{mark}");
        // opusdec at the recording's rate: the same length, two channels.
        let f = dir.join(format!("{rate}.ogg"));
        std::fs::write(&f, &ogg).unwrap();
        let back = dir.join(format!("{rate}.wav"));
        run_tool(
            std::process::Command::new("opusdec")
                .args(["--quiet", "--rate"])
                .arg(rate.to_string())
                .arg(&f)
                .arg(&back),
        );
        let decoded = std::fs::read(&back).unwrap();
        assert_eq!(u16::from_le_bytes([decoded[22], decoded[23]]), 2);
        let pcm = &decoded[decoded.len() - frames * 4..];
        assert_eq!(
            decoded.len() - 44,
            frames * 4,
            "opusdec: the input's length"
        );
        // The agent speaks alone for the first 2.5 s: the other channel stays near silent.
        let (a, b) = (rate as usize / 5, rate as usize * 23 / 10);
        let leak = 10.0 * (energy(pcm, 1, a, b) / energy(pcm, 0, a, b)).log10();
        assert!(
            leak < -25.0,
            "{rate} Hz: the talker leaks into the other channel at {leak:.1} dB"
        );
        // ffmpeg (its own Ogg demuxer and Opus decoder) at 48 kHz: 48000/rate times the frames.
        let raw = run_tool(
            std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&f)
                .args(["-f", "s16le", "-"]),
        );
        assert_eq!(
            raw.len(),
            frames * (48000 / rate as usize) * 4,
            "ffmpeg: the length"
        );
        env.assert_skipped_again(&handler, &bucket, key).await;
    }
    // An Ogg object without our marker is recognised by its header.
    env.put(
        &bucket,
        "rec/foreign.wav",
        std::fs::read(dir.join("8000.ogg")).unwrap(),
    )
    .await;
    let results = env
        .run(
            &env.handler(Settings::default()),
            &event_v1(&bucket, &[("rec/foreign.wav", None)]),
        )
        .await;
    let s = summary(&results[0]);
    assert!(s["reason"].as_str().unwrap().contains("already ogg"), "{s}");

    // G.711 from 16 kHz: resampled, in place.
    let key = "rec/wide alaw.wav";
    let original = call_at(16000, 3.0);
    let frames16 = ((original.len() - 44) / 4) as u64;
    let (s, alaw) = env
        .convert_in_place(
            &env.handler(Settings::default()),
            &bucket,
            key,
            &original,
            "alaw",
        )
        .await;
    assert!(s["inputFormat"].as_str().unwrap().contains("16000"), "{s}");
    assert_eq!(u32::from_le_bytes(alaw[24..28].try_into().unwrap()), 8000);
    assert_eq!(u16::from_le_bytes([alaw[20], alaw[21]]), 6, "A-law");
    let f = dir.join("wide-alaw.wav");
    std::fs::write(&f, &alaw).unwrap();
    let raw = run_tool(
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&f)
            .args(["-f", "s16le", "-"]),
    );
    assert_eq!(
        raw.len() as u64,
        frames16.div_ceil(2) * 2,
        "ceil(frames / 2), mono"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
