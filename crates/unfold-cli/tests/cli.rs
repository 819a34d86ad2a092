//! Integration tests of the `unfold` binary: every command, every built-in task with tiny
//! settings, exact resume, settings files, and bad inputs (one-line errors, exit status 2,
//! never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn unfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unfold"))
        .args(args)
        .env("UNFOLD_THREADS", "1")
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let o = unfold(args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "unfold {args:?} failed ({:?}):\n{out}\n{err}",
        o.status
    );
    out
}

/// Runs a command that must fail on bad input: exit status 2, one line on stderr that
/// contains `needle`, no panic.
fn bad(args: &[&str], needle: &str) {
    let o = unfold(args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "unfold {args:?}: {out}\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "unfold {args:?}: expected '{needle}' in: {err}"
    );
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unfold-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const TINY: &[&str] = &[
    "--steps",
    "20",
    "--train-size",
    "64",
    "--valid-size",
    "16",
    "--hidden",
    "8",
    "--eval-every",
    "10",
    "--samples",
    "20",
    "--quiet",
];

fn train_tiny(task: &str, dir: &Path, extra: &[&str]) {
    let mut args = vec!["train", "--task", task, "--out", dir.to_str().unwrap()];
    // TINY's defaults, except those `extra` sets.
    let mut i = 0;
    while i < TINY.len() {
        if TINY[i] == "--quiet" {
            args.push(TINY[i]);
            i += 1;
            continue;
        }
        if !extra.contains(&TINY[i]) {
            args.extend_from_slice(&TINY[i..i + 2]);
        }
        i += 2;
    }
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn tasks_lists_every_builtin_task() {
    let out = ok(&["tasks"]);
    for t in ["reber", "adding", "copy", "parity", "mackey-glass", "sines"] {
        assert!(out.contains(t), "{t} missing from:\n{out}");
    }
    assert!(
        out.contains("0.04"),
        "the adding problem's criterion is shown"
    );
}

#[test]
fn every_task_trains_and_fills_its_run_directory() {
    for (task, extra) in [
        ("reber", &[][..]),
        ("adding", &["--length", "12"][..]),
        ("copy", &["--length", "3"][..]),
        ("parity", &["--length", "6"][..]),
        ("mackey-glass", &["--length", "20"][..]),
        ("sines", &["--length", "20"][..]),
    ] {
        let dir = temp(&format!("task-{task}"));
        train_tiny(task, &dir, extra);
        for f in [
            "checkpoint.safetensors",
            "config.toml",
            "metrics.jsonl",
            "loss.png",
            "loss.svg",
            "valid.png",
            "valid.svg",
            "summary.json",
            "summary.md",
        ] {
            assert!(dir.join(f).exists(), "{task}: {f} missing");
        }
        let summary: String = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        assert!(
            summary.contains(&format!("\"task\": \"{task}\"")),
            "{summary}"
        );
        assert!(summary.contains("\"passed\""));
        let png = std::fs::metadata(dir.join("loss.png")).unwrap().len();
        assert!(png > 5000, "{task}: loss.png is only {png} bytes");
        let svg = std::fs::read_to_string(dir.join("loss.svg")).unwrap();
        assert!(
            svg.contains("<text") && svg.contains("step"),
            "{task}: svg without labels"
        );
        let eval = ok(&["eval", dir.to_str().unwrap(), "--json"]);
        assert!(eval.contains(&format!("\"task\":\"{task}\"")), "{eval}");
        let inspect = ok(&["inspect", dir.to_str().unwrap()]);
        assert!(
            inspect.contains("rnn.weight_hh_l0") && inspect.contains("head.weight"),
            "{inspect}"
        );
    }
}

#[test]
fn sample_eval_and_inspect_need_only_the_checkpoint() {
    let dir = temp("reber");
    train_tiny("reber", &dir, &["--steps", "60"]);
    // Copy the checkpoint alone somewhere else: it must be enough.
    let lone = temp("lone");
    std::fs::create_dir_all(&lone).unwrap();
    let ck = lone.join("model.safetensors");
    std::fs::copy(dir.join("checkpoint.safetensors"), &ck).unwrap();
    let out = ok(&[
        "sample",
        ck.to_str().unwrap(),
        "--prime",
        "BT",
        "--count",
        "3",
        "--length",
        "30",
        "--seed",
        "4",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("BT")), "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("[valid]") || l.ends_with("[invalid]")),
        "{out}"
    );
    let again = ok(&[
        "sample",
        ck.to_str().unwrap(),
        "--prime",
        "BT",
        "--count",
        "3",
        "--length",
        "30",
        "--seed",
        "4",
    ]);
    assert_eq!(out, again, "same seed, same samples");
    let greedy = ok(&[
        "sample",
        ck.to_str().unwrap(),
        "--greedy",
        "--count",
        "1",
        "--length",
        "5",
        "--prime",
        "B?",
    ]);
    assert!(
        greedy.starts_with("B?"),
        "unknown characters in the prime are accepted: {greedy}"
    );
    let inspect = ok(&["inspect", ck.to_str().unwrap()]);
    assert!(
        inspect.contains("vocabulary") && inspect.contains("<end>"),
        "{inspect}"
    );
    let eval = ok(&["eval", ck.to_str().unwrap(), "--samples", "50"]);
    assert!(eval.contains("valid embedded Reber strings"), "{eval}");
}

fn model_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    // The safetensors header is JSON; compare the raw bytes of every model.* tensor.
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out = Vec::new();
    for (k, v) in header.as_object().unwrap() {
        if k.starts_with("model.") {
            let off = v["data_offsets"].as_array().unwrap();
            let (a, b) = (
                off[0].as_u64().unwrap() as usize,
                off[1].as_u64().unwrap() as usize,
            );
            out.push((k.clone(), bytes[8 + n + a..8 + n + b].to_vec()));
        }
    }
    out.sort();
    out
}

#[test]
fn resume_continues_exactly() {
    // A constant learning rate: a cosine schedule's period is the run's length, which
    // --steps changes on resume.
    let same = ["--length", "6", "--schedule", "constant"];
    let full = temp("full");
    train_tiny("parity", &full, &[&same[..], &["--steps", "30"]].concat());
    let part = temp("part");
    train_tiny("parity", &part, &[&same[..], &["--steps", "20"]].concat());
    ok(&[
        "train",
        "--resume",
        part.to_str().unwrap(),
        "--steps",
        "30",
        "--quiet",
    ]);
    let (a, b) = (
        model_tensors(&full.join("checkpoint.safetensors")),
        model_tensors(&part.join("checkpoint.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "a run resumed at step 20 must end where the uninterrupted run ends"
    );
    bad(
        &["train", "--resume", part.to_str().unwrap(), "--hidden", "9"],
        "only --steps",
    );
}

#[test]
fn settings_file_and_flags() {
    let dir = temp("config");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        "task = \"sines\"\nhidden = 12\nlength = 20\nsteps = 10\nlayers = 2\n",
    )
    .unwrap();
    let out = dir.join("run");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--hidden",
        "10",
        "--out",
        out.to_str().unwrap(),
        "--train-size",
        "32",
        "--valid-size",
        "8",
        "--quiet",
    ]);
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(saved.contains("task = \"sines\""), "{saved}");
    assert!(
        saved.contains("hidden = 10"),
        "the flag overrides the file: {saved}"
    );
    assert!(
        saved.contains("layers = 2"),
        "the file's value is kept: {saved}"
    );
    // The settings are also inside the checkpoint.
    let bytes = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let header = String::from_utf8_lossy(&bytes[8..8 + 20000.min(bytes.len() - 8)]).into_owned();
    assert!(header.contains("unfold.settings") && header.contains("hidden = 10"));
}

#[test]
fn bad_inputs_give_one_line_errors_and_status_2() {
    let dir = temp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    bad(&["train", "--task", "nope"], "unknown task");
    bad(&["train", "--lr=-1"], "--lr");
    bad(&["train", "--model", "transformer"], "--model");
    bad(&["train", "--optimizer", "lion"], "optimizer");
    bad(&["train", "--steps", "0"], "--steps");
    bad(&["train", "--task", "adding", "--length", "3"], "length");
    bad(
        &[
            "train",
            "--config",
            dir.join("missing.toml").to_str().unwrap(),
        ],
        "missing.toml",
    );
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "hidden = [1,\n").unwrap();
    bad(
        &["train", "--config", broken.to_str().unwrap()],
        "broken.toml",
    );
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "hiden = 3\n").unwrap();
    bad(&["train", "--config", unknown.to_str().unwrap()], "hiden");
    bad(
        &["sample", dir.join("nothing-here").to_str().unwrap()],
        "no such run",
    );
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    bad(&["sample", junk.to_str().unwrap()], "junk.safetensors");
    bad(&["inspect", dir.to_str().unwrap()], "not a run directory");
    bad(&["train", "--resume", dir.to_str().unwrap()], "config.toml");
    bad(&["--threads", "0", "tasks"], "--threads");
    bad(&["bench", "--config", "nope"], "nope");
    // A run of a task that does not generate.
    let cls = temp("cls");
    train_tiny("adding", &cls, &["--length", "12", "--steps", "2"]);
    bad(&["sample", cls.to_str().unwrap()], "does not generate");
    bad(
        &["sample", cls.to_str().unwrap(), "--temperature", "0"],
        "temperature",
    );
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    bad(&["train", "--out", file.to_str().unwrap()], "is a file");
}
