//! Property tests of every parser of untrusted bytes in the contract: whatever comes in ends in
//! a typed error or a value, never a panic; what we write reads back. Bounded case counts keep
//! the CI budget fixed; real shapes (the documented fixtures) seed the generators.

use std::collections::BTreeMap;

use batch_contract::event::{self, OutgoingTask, TaskEntry};
use batch_contract::inventory::InventoryManifest;
use batch_contract::key::{decode_key, encode_key};
use batch_contract::report::{ReportManifest, ReportRow, parse_rows, write_rows};
use batch_contract::result::Summary;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, deep enough to reach every field the parser looks at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9%+/._: -]{0,12}".prop_map(Value::from),
        Just(json!("1.0")),
        Just(json!("2.0")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("invocationSchemaVersion".to_string()),
                    Just("invocationId".to_string()),
                    Just("job".to_string()),
                    Just("id".to_string()),
                    Just("userArguments".to_string()),
                    Just("tasks".to_string()),
                    Just("taskId".to_string()),
                    Just("s3Key".to_string()),
                    Just("s3Bucket".to_string()),
                    Just("s3BucketArn".to_string()),
                    Just("s3VersionId".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The documented shapes, mutated: one field of a real event replaced by anything.
fn mutated_fixture() -> impl Strategy<Value = Value> {
    let fixture = json!({"invocationSchemaVersion":"2.0","invocationId":"YXNk","job":{"id":"j","userArguments":{"k1":"v1"}},
        "tasks":[{"taskId":"dGFz","s3Key":"customerImage1.jpg","s3VersionId":null,"s3Bucket":"awsexamplebucket"}]});
    (0usize..7, json_value()).prop_map(move |(field, v)| {
        let mut e = fixture.clone();
        match field {
            0 => e["invocationSchemaVersion"] = v,
            1 => e["invocationId"] = v,
            2 => e["job"] = v,
            3 => e["job"]["userArguments"] = v,
            4 => e["tasks"] = v,
            5 => e["tasks"][0]["s3Key"] = v,
            _ => e["tasks"][0]["s3VersionId"] = v,
        }
        e
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_key_encodes_and_decodes_back(key in "\\PC{1,64}") {
        let enc = encode_key(&key);
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)));
        prop_assert_eq!(decode_key(&enc).unwrap(), key);
    }

    #[test]
    fn any_raw_key_decodes_or_says_why(raw in "[\\PC%+]{0,40}") {
        let _ = decode_key(&raw);
    }

    #[test]
    fn any_event_parses_to_an_answer_for_each_task(event in prop_oneof![json_value(), mutated_fixture()]) {
        let inv = event::parse(&event);
        if let Some(Value::Array(tasks)) = event.get("tasks") {
            prop_assert_eq!(inv.tasks.len(), tasks.len());
        }
        for t in &inv.tasks {
            if let TaskEntry::Ready(t) = t {
                prop_assert!(!t.bucket.is_empty() && !t.task_id.is_empty());
            }
        }
    }

    #[test]
    fn built_events_parse_back(
        bucket in "[a-z0-9][a-z0-9.-]{2,20}",
        key in "\\PC{1,40}",
        version in proptest::option::of("[A-Za-z0-9._]{1,32}"),
        args in prop::collection::btree_map("[a-zA-Z]{1,8}", "\\PC{0,16}", 0..4),
        v2 in any::<bool>(),
    ) {
        let raw = encode_key(&key);
        let args: BTreeMap<String, String> = args;
        let ev = event::build(
            Some(if v2 { "2.0" } else { "1.0" }),
            "inv",
            "job",
            Some(&args),
            OutgoingTask { task_id: "t", bucket: &bucket, raw_key: &raw, version_id: version.as_deref() },
        );
        let inv = event::parse(&ev);
        prop_assert_eq!(inv.error, None);
        let TaskEntry::Ready(t) = &inv.tasks[0] else { panic!("{:?}", inv.tasks[0]) };
        prop_assert_eq!(&t.bucket, &bucket);
        prop_assert_eq!(&t.key, &key);
        prop_assert_eq!(&t.version_id, &version);
        if v2 {
            prop_assert_eq!(&inv.user_arguments, &args);
        }
    }

    #[test]
    fn any_bytes_parse_as_report_rows_or_name_the_row(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        match parse_rows(&bytes, "r.csv") {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().starts_with("r.csv: row ")),
        }
        let _ = ReportManifest::parse(&bytes, "manifest.json");
        let _ = InventoryManifest::parse(&bytes, "manifest.json");
        let _ = Summary::from_result_string(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn written_rows_read_back(
        rows in prop::collection::vec(
            (
                "[a-z0-9.-]{3,20}",
                "[\\PC]{1,30}",
                "[A-Za-z0-9._]{0,20}",
                any::<bool>(),
                100u16..600,
                "[A-Za-z]{0,20}",
                "\\PC{0,60}",
            ),
            1..8,
        )
    ) {
        let rows: Vec<ReportRow> = rows
            .into_iter()
            .map(|(bucket, raw_key, version_id, ok, http, code, message)| ReportRow {
                bucket,
                raw_key,
                version_id,
                status: if ok { "succeeded" } else { "failed" }.into(),
                http_status: Some(http),
                error_code: code,
                message,
            })
            .collect();
        let bytes = write_rows(&rows).unwrap();
        prop_assert_eq!(parse_rows(&bytes, "r.csv").unwrap(), rows);
    }

    #[test]
    fn result_strings_stay_bounded_and_valid(key in "\\PC{0,1200}", reason in "\\PC{0,200}") {
        let s = Summary { output_key: key, ..Summary::skipped(reason, 7) };
        let text = s.to_result_string();
        prop_assert!(text.len() <= batch_contract::event::MAX_RESULT_STRING);
        prop_assert!(Summary::from_result_string(&text).is_some());
    }
}
