//! `skan-receiver verify`, run as a process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{APPLE_VECTORS, OWN_VECTORS, repo_path};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_skan-receiver"))
}

fn run(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap(), lines, String::from_utf8(out.stderr).unwrap())
}

fn ndjson(values: impl IntoIterator<Item = Value>) -> String {
    values.into_iter().map(|v| format!("{v}\n")).collect()
}

#[test]
fn apple_vectors_as_ndjson_all_verify_and_exit_zero() {
    let input = ndjson(APPLE_VECTORS.iter().map(|v| v.postback.clone()));
    let (code, lines, _) = run(&["verify", "-"], &input);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 8);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        assert_eq!(line["outcome"], "valid", "{line}");
        assert_eq!(line["error"], Value::Null);
    }
    assert_eq!(lines[0]["protocol"], "skadnetwork");
    assert_eq!(lines[0]["version"], "4.0");
    assert_eq!(lines[0]["development"], false);
    assert_eq!(lines[0]["dedup_key"], "skan:com.example:6aafb7a5-0170-41b5-bbe4-fe71dedf1e30:0");
    assert_eq!(lines[7]["protocol"], "adattributionkit");
    assert_eq!(lines[7]["version"], Value::Null);
    assert_eq!(lines[7]["development"], true);
}

#[test]
fn own_vectors_need_the_test_keys_given_with_keys() {
    let input = ndjson(OWN_VECTORS.iter().map(|v| v.postback.clone()));
    let (code, lines, _) = run(&["verify", "-"], &input);
    assert_eq!(code, 1, "they do not verify under Apple's keys");
    assert!(lines.iter().all(|l| l["outcome"] != "valid"));
    let keys = repo_path("testdata/keys");
    let (code, lines, _) = run(&["verify", "--keys", keys.to_str().unwrap(), "-"], &input);
    assert_eq!(code, 0);
    assert!(lines.iter().all(|l| l["outcome"] == "valid"));
}

#[test]
fn a_json_array_file_and_a_pretty_printed_object_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("batch.json");
    let values: Vec<Value> = APPLE_VECTORS.iter().take(3).map(|v| v.postback.clone()).collect();
    std::fs::write(&array, serde_json::to_string_pretty(&values).unwrap()).unwrap();
    let single = dir.path().join("one.json");
    std::fs::write(&single, serde_json::to_string_pretty(&APPLE_VECTORS[4].postback).unwrap())
        .unwrap();
    let (code, lines, _) = run(&["verify", array.to_str().unwrap(), single.to_str().unwrap()], "");
    assert_eq!(code, 0);
    let txids: Vec<&str> = lines.iter().map(|l| l["dedup_key"].as_str().unwrap()).collect();
    assert_eq!(
        lines.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert!(txids[0].contains("fe71dedf1e30") && txids[1].contains("fe71dedf1e31"));
    assert_eq!(lines[3]["version"], "2.2");
    assert_eq!(lines[3]["input"], single.to_str().unwrap());
}

#[test]
fn a_bad_item_gets_its_error_and_the_exit_status_is_one() {
    let input = format!(
        "{}\n{{\"version\": \"4.0\"\n}}\nnot json\n{}\n",
        APPLE_VECTORS[0].postback,
        serde_json::json!({"version":"3.0","ad-network-id":"x","campaign-id":"42","app-id":1,"transaction-id":"t","redownload":false,"fidelity-type":1,"did-win":true})
    );
    let (code, lines, _) = run(&["verify"], &input);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["outcome"], "valid");
    assert_eq!(lines[1]["error"]["code"], "missing_field");
    assert_eq!(lines[2]["error"]["code"], "malformed_json");
    assert_eq!(lines[3]["error"]["field"], "campaign-id");
    assert_eq!(lines[3]["error"]["message"], "expected an integer 0-100, got a string");
}

#[test]
fn unreadable_input_and_bad_usage_exit_two_with_an_error_document() {
    let (code, _, stderr) = run(&["verify", "/nonexistent/postbacks.json"], "");
    assert_eq!(code, 2);
    let err: Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "unreadable_input");
    let (code, _, stderr) = run(&["verify", "--no-such-flag"], "");
    assert_eq!(code, 2);
    let err: Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(err["error"]["code"], "usage");
    let (code, _, stderr) = run(&["verify", "--keys", "/nonexistent", "-"], "");
    assert_eq!(code, 2);
    let err: Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(err["error"]["field"], "--keys");
}

#[test]
fn output_streams_before_the_input_ends() {
    // If verify loaded its whole input first, no line could come out while stdin stays open.
    let mut child =
        bin().args(["verify", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = format!("{}\n", APPLE_VECTORS[0].postback);
    let writer = std::thread::spawn(move || {
        for _ in 0..3000 {
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
        stdin // keep it open: returned to the test, dropped at the end
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        tx.send(first).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
    });
    let first =
        rx.recv_timeout(Duration::from_secs(60)).expect("a line arrives while input is still open");
    assert!(first.contains("\"index\":0"));
    let stdin = writer.join().unwrap();
    drop(stdin);
    let _ = child.wait();
}

#[test]
fn many_batches_come_out_in_input_order_with_each_line_answered() {
    // Batches are checked on several cores and finish in any order: here the first batch holds
    // signatures to verify and the later ones only lines that fail to parse, so later batches
    // finish first. The output must still follow the input line by line.
    let valid = APPLE_VECTORS[0].postback.to_string();
    let is_valid = |i: usize| i < 300 || i.is_multiple_of(11);
    let input: String = (0..2_000)
        .map(|i| if is_valid(i) { format!("{valid}\n") } else { format!("not json {i}\n") })
        .collect();
    let (code, lines, _) = run(&["verify", "-"], &input);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2_000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i, "{line}");
        assert_eq!(line["outcome"] == "valid", is_valid(i), "line {i}: {line}");
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_run() {
    // `verify … | head -1`: the closed pipe must stop every stage, not leave the process hanging.
    let line = format!("{}\n", APPLE_VECTORS[0].postback);
    let file = std::env::temp_dir().join(format!("verify-early-{}.ndjson", std::process::id()));
    std::fs::write(&file, line.repeat(20_000)).unwrap();
    let mut child = bin()
        .args(["verify", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"index\":0"), "{first}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "verify kept running after its reader left");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::remove_file(&file).unwrap();
    assert_eq!(status.code(), Some(0), "a closed output after valid lines is not a failure");
}
