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

/// The run's checkpoint reloads through the library alone (`unfold::models::load_model`, no
/// command-line code) as a model of kind `kind` with exactly the checkpoint's parameters, and
/// with what `check` asks of it (vocabularies, scaling).
fn library_reloads(
    dir: &Path,
    kind: &str,
    check: impl Fn(&unfold::models::SavedModel<f32>) -> bool,
) {
    use unfold::models::{load_model, ModelSpec};
    let ck = dir.join("checkpoint.safetensors");
    let saved = load_model::<f32>(&ck).unwrap_or_else(|e| panic!("{}: {e}", ck.display()));
    let got = match saved.spec {
        ModelSpec::Labeller { .. } => "labeller",
        ModelSpec::Classifier { .. } => "classifier",
        ModelSpec::Seq2Seq { .. } => "seq2seq",
        ModelSpec::Tree { .. } => "tree",
        ModelSpec::Grid { .. } => "grid",
    };
    assert_eq!(got, kind, "{}", ck.display());
    assert!(
        check(&saved),
        "{}: vocabulary or scaling missing",
        ck.display()
    );
    let file = unfold::checkpoint::TensorFile::read(&ck).unwrap();
    let params = saved.model.params();
    assert!(!params.is_empty());
    for (name, _, values) in params {
        let stored: Vec<f32> = file.tensors[&format!("model.{name}")].to_vec().unwrap();
        assert_eq!(stored, values, "{name}");
    }
}

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
    for t in [
        "reber",
        "adding",
        "copy",
        "parity",
        "period",
        "mackey-glass",
        "sines",
        "arith",
        "logic",
        "maze",
    ] {
        assert!(out.contains(t), "{t} missing from:\n{out}");
    }
    assert!(
        out.contains("0.04"),
        "the adding problem's criterion is shown"
    );
}

/// A task's own default forget-gate bias (3 for the adding problem, 1 elsewhere) reaches the
/// saved settings, and `--forget-bias` overrides it.
#[test]
fn task_default_forget_bias_and_its_override() {
    for (task, extra, want) in [
        ("adding", &["--length", "12"][..], "forget_bias = 3.0"),
        (
            "adding",
            &["--length", "12", "--forget-bias", "1"][..],
            "forget_bias = 1.0",
        ),
        ("parity", &["--length", "6"][..], "forget_bias = 1.0"),
    ] {
        let dir = temp(&format!("fb-{task}-{}", extra.len()));
        train_tiny(task, &dir, extra);
        let saved = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(saved.contains(want), "{task} {extra:?}: {saved}");
    }
}

/// `--model leaky` trains, saves its leak settings, reloads for `eval` and `inspect` (learned
/// leaks are the `leak_rho` tensors; fixed ones are not parameters), and bad leaks are errors.
#[test]
fn leaky_units_train_reload_and_check_their_leaks() {
    for (tag, extra, rho) in [
        ("learned", &["--leak-min", "0.05"][..], true),
        ("fixed", &["--leak-fixed"][..], false),
    ] {
        let dir = temp(&format!("leaky-{tag}"));
        let mut args = vec!["--length", "12", "--model", "leaky"];
        args.extend_from_slice(extra);
        train_tiny("adding", &dir, &args);
        let saved = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(saved.contains("model = \"leaky\""), "{saved}");
        assert!(
            saved.contains(&format!("leak_fixed = {}", !rho)),
            "{tag}: {saved}"
        );
        let d = dir.to_str().unwrap();
        let inspect = ok(&["inspect", d]);
        assert_eq!(inspect.contains("rnn.leak_rho_l0"), rho, "{inspect}");
        assert!(inspect.contains("rnn.bias_l0"), "{inspect}");
        let eval = ok(&["eval", d, "--json"]);
        assert!(eval.contains("mse"), "{eval}");
    }
    for (flag, value) in [("--leak-min", "0"), ("--leak-max", "1.5")] {
        let args = ["train", "--task", "adding", "--model", "leaky", flag, value];
        bad(&args, "leak");
    }
}

/// A checkpoint written before model specs were stored (the previous release's: settings and
/// shape only) still loads in the command line, and the library says plainly why it cannot.
#[test]
fn checkpoints_from_before_specs_still_load() {
    let dir = temp("legacy");
    train_tiny("parity", &dir, &["--length", "6", "--steps", "20"]);
    let ck = dir.join("checkpoint.safetensors");
    let mut f = unfold::checkpoint::TensorFile::read(&ck).unwrap();
    assert!(f.metadata.remove("unfold.model").is_some());
    // The previous release stored the model's shape as TOML.
    let shape = "kind = \"classifier\"\ninput_symbols = 0\ninput_width = 1\n\
                 output = \"categorical\"\noutput_width = 2\n";
    f.metadata.insert("unfold.shape".into(), shape.into());
    f.write(&ck).unwrap();
    let eval = ok(&["eval", dir.to_str().unwrap(), "--json"]);
    assert!(eval.contains("\"task\":\"parity\""), "{eval}");
    let err = unfold::models::load_model::<f32>(&ck)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no model spec"), "{err}");
}

#[test]
fn every_task_trains_and_fills_its_run_directory() {
    for (task, extra) in [
        ("reber", &[][..]),
        ("adding", &["--length", "12"][..]),
        ("copy", &["--length", "3"][..]),
        ("parity", &["--length", "6"][..]),
        ("period", &["--length", "100"][..]),
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
        let kind = match task {
            "adding" | "parity" | "period" => "classifier",
            _ => "labeller",
        };
        library_reloads(&dir, kind, |m| m.vocab.is_some() == (task == "reber"));
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
    // A reader that stops early (`| head`) ends the program quietly, without a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_unfold"))
        .args([
            "sample",
            ck.to_str().unwrap(),
            "--count",
            "20000",
            "--length",
            "40",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("error"),
        "closed pipe: {err}"
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
    bad(&["train", "--dropout", "1.5"], "--dropout");
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

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn ts_file(n: usize, seed: usize, extra_class: bool) -> String {
    let mut s = String::from("# generated\n@problemName Toy\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b c\n@data\n");
    for i in 0..n {
        let class = ["a", "b", "c"][(i + seed) % 3];
        let len = 4 + (i * 7 + seed) % 5;
        let level = match class {
            "a" => -1.0,
            "b" => 0.0,
            _ => 1.0,
        };
        let ch = |k: f64| {
            (0..len)
                .map(|t| format!("{:.3}", level * k + 0.1 * ((t * 13 + i) % 7) as f64))
                .collect::<Vec<_>>()
                .join(",")
        };
        s += &format!(
            "{}:{}:{}\n",
            ch(1.0),
            ch(-0.5),
            if extra_class && i == 0 { "z" } else { class }
        );
    }
    s
}

#[test]
fn user_data_text_ts_and_csv() {
    let dir = temp("user");
    // Text: a language model, sampled from the checkpoint alone.
    let words = ["the ", "cat ", "sat ", "on ", "a ", "mat. "];
    let body: String = (0..900)
        .map(|i| words[(i * 7 + i / 5) % words.len()])
        .collect();
    let text = write(&dir, "corpus.txt", &body);
    let run = dir.join("lm");
    ok(&[
        "train",
        "lm",
        "--layers",
        "2",
        "--dropout",
        "0.2",
        "--text",
        text.to_str().unwrap(),
        "--steps",
        "30",
        "--hidden",
        "16",
        "--seq-len",
        "20",
        "--batch",
        "4",
        "--eval-every",
        "10",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    let out = ok(&[
        "sample",
        run.to_str().unwrap(),
        "--prime",
        "the ",
        "--length",
        "40",
        "--count",
        "2",
    ]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| l.starts_with("the ")), "{out}");
    library_reloads(&run, "labeller", |m| m.vocab.is_some());
    let eval = ok(&["eval", run.to_str().unwrap(), "--json"]);
    assert!(eval.contains("test_bits_per_character"), "{eval}");
    // .ts: a sequence classifier on variable-length multivariate series.
    let tr = write(&dir, "toy_TRAIN.ts", &ts_file(60, 0, false));
    let te = write(&dir, "toy_TEST.ts", &ts_file(30, 1, false));
    let run = dir.join("cls");
    ok(&[
        "train",
        "--ts",
        tr.to_str().unwrap(),
        "--test",
        te.to_str().unwrap(),
        "--steps",
        "150",
        "--hidden",
        "16",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(
        v["value"].as_f64().unwrap() > 0.9,
        "toy classes are separable: {summary}"
    );
    let inspect = ok(&["inspect", run.to_str().unwrap()]);
    assert!(inspect.contains("classes     a b c"), "{inspect}");
    library_reloads(&run, "classifier", |m| {
        m.scaler.as_ref().is_some_and(|s| s.classes.len() == 3)
    });
    // CSV: forecasting one column from two.
    let mut csv = String::from("\"t\",\"a\",\"b\"\n");
    for t in 0..300 {
        let x = t as f64 * 0.2;
        csv += &format!("{t},{:.4},{:.4}\n", x.sin(), (x * 0.5).cos());
    }
    let csvp = write(&dir, "series.csv", &csv);
    let run = dir.join("fc");
    ok(&[
        "train",
        "--csv",
        csvp.to_str().unwrap(),
        "--column",
        "a,b",
        "--target",
        "b",
        "--length",
        "20",
        "--steps",
        "200",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    let eval = ok(&["eval", run.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    assert!(
        v["details"]["rmse_original_units"].as_f64().unwrap() < 0.3,
        "{eval}"
    );
    library_reloads(&run, "labeller", |m| {
        m.scaler.as_ref().is_some_and(|s| s.target == Some(1))
    });

    // Bad user data: file, line and field named, status 2.
    bad(
        &["train", "--csv", csvp.to_str().unwrap(), "--column", "c"],
        "no column 'c'",
    );
    let broken = write(&dir, "broken.csv", "a,b\n1,2\n3,x\n");
    bad(
        &[
            "train",
            "--csv",
            broken.to_str().unwrap(),
            "--column",
            "a,b",
        ],
        "broken.csv:3: column 'b'",
    );
    let nan = write(&dir, "nan.csv", "a\n1\nNaN\n");
    bad(
        &["train", "--csv", nan.to_str().unwrap(), "--column", "a"],
        "nan.csv:3",
    );
    bad(&["train", "--csv", csvp.to_str().unwrap()], "--column");
    let short = write(&dir, "short.csv", "a\n1\n2\n3\n");
    bad(
        &["train", "--csv", short.to_str().unwrap(), "--column", "a"],
        "too few",
    );
    bad(&["train", "--ts", tr.to_str().unwrap()], "--test");
    let bad_ts = write(&dir, "bad.ts", "@classLabel true a b\n@data\n1,2,oops:a\n");
    bad(
        &[
            "train",
            "--ts",
            bad_ts.to_str().unwrap(),
            "--test",
            te.to_str().unwrap(),
        ],
        "bad.ts:3: channel 1, value 3",
    );
    let unknown = write(&dir, "unknown_TEST.ts", &ts_file(5, 0, true));
    bad(
        &[
            "train",
            "--ts",
            tr.to_str().unwrap(),
            "--test",
            unknown.to_str().unwrap(),
            "--steps",
            "1",
        ],
        "'z'",
    );
    let tiny = write(&dir, "tiny.txt", "too short");
    bad(
        &["train", "--text", tiny.to_str().unwrap()],
        "at least 1000",
    );
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x41].repeat(400)).unwrap();
    bad(&["train", "--text", binary.to_str().unwrap()], "not UTF-8");
    bad(
        &["train", "--text", text.to_str().unwrap(), "--task", "copy"],
        "cannot be combined",
    );
    bad(
        &[
            "train",
            "--text",
            text.to_str().unwrap(),
            "--csv",
            csvp.to_str().unwrap(),
        ],
        "at most one",
    );
    bad(
        &["train", "--text", dir.join("absent.txt").to_str().unwrap()],
        "absent.txt",
    );
}

#[test]
fn pairs_train_an_encoder_decoder_and_translate_reads_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = temp("pairs");
    let mut tsv = String::new();
    for i in 0..200 {
        let w: String = (0..1 + i % 5)
            .map(|k| (b'a' + ((i * 7 + k * 3) % 6) as u8) as char)
            .collect();
        let rev: String = w.chars().rev().collect::<String>().to_uppercase();
        tsv += &format!("{w}\t{rev}\n");
    }
    let pairs = write(&dir, "pairs.tsv", &tsv);
    let run = dir.join("s2s");
    ok(&[
        "train",
        "--pairs",
        pairs.to_str().unwrap(),
        "--steps",
        "30",
        "--hidden",
        "16",
        "--batch",
        "16",
        "--attention",
        "multiplicative",
        "--scheduled-sampling",
        "0.3",
        "--eval-every",
        "10",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(
        summary.contains("token_error_rate") && summary.contains("exact_match"),
        "{summary}"
    );
    library_reloads(&run, "seq2seq", |m| {
        m.vocab.is_some() && m.src_vocab.is_some()
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_unfold"))
        .args(["translate", run.to_str().unwrap(), "--beam", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"abc\n\ncab\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "one output line per input line"
    );
    let inspect = ok(&["inspect", run.to_str().unwrap()]);
    assert!(
        inspect.contains("encoder.weight_hh_l0_reverse") && inspect.contains("attn_key.weight"),
        "{inspect}"
    );
    // Bad inputs.
    let broken = write(&dir, "broken.tsv", &format!("{tsv}no tab here\n"));
    bad(
        &["train", "--pairs", broken.to_str().unwrap()],
        "broken.tsv:201",
    );
    bad(&["train", "--attention", "additive"], "--pairs");
    bad(&["train", "--scheduled-sampling", "0.2"], "--pairs");
    bad(
        &[
            "train",
            "--pairs",
            pairs.to_str().unwrap(),
            "--scheduled-sampling",
            "2",
        ],
        "probability",
    );
    bad(
        &[
            "train",
            "--pairs",
            pairs.to_str().unwrap(),
            "--attention",
            "soft",
        ],
        "--attention",
    );
    bad(
        &["translate", run.to_str().unwrap(), "--beam", "0"],
        "--beam",
    );
    bad(&["sample", run.to_str().unwrap()], "translate");
    let lm = temp("pairs-lm");
    train_tiny("parity", &lm, &["--length", "6", "--steps", "2"]);
    bad(
        &["translate", lm.to_str().unwrap()],
        "not an encoder-decoder",
    );
}

#[test]
fn the_main_job_with_its_defaults_passes() {
    // `unfold train` with nothing but a run directory: the README's first command.
    let dir = temp("main-job");
    let out = ok(&["train", "--out", dir.to_str().unwrap()]);
    assert!(out.contains("training reber: lstm"), "{out}");
    assert!(
        out.lines().filter(|l| l.starts_with("step ")).count() >= 10,
        "plain progress lines when not a terminal:\n{out}"
    );
    assert!(out.contains("samples:") && out.contains("PASSED"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(
        v["value"].as_f64().unwrap() > 0.99,
        "valid share {}",
        v["value"]
    );
    assert!(v["details"]["long_range_matched_share"].as_f64().unwrap() > 0.99);
}

#[test]
fn esn_fits_mackey_glass_writes_plots_and_a_checkpoint_forecast_reloads() {
    let dir = temp("esn");
    let d = dir.to_str().unwrap();
    let out = ok(&[
        "esn", "--units", "100", "--steps", "600", "--trials", "5", "--out", d,
    ]);
    assert!(out.contains("NRMSE after 84 free-running steps"), "{out}");
    assert!(out.contains("forgotten"), "{out}");
    for f in [
        "esn.safetensors",
        "summary.json",
        "eigenvalues.png",
        "eigenvalues.svg",
        "echo_state.png",
        "forecast.svg",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["one_step_nrmse"].as_f64().unwrap() < 1e-2,
        "{summary}"
    );
    let measured = summary["diagnostics"]["spectral_radius_measured"]
        .as_f64()
        .unwrap();
    assert!((measured - 0.95).abs() < 1e-9, "{measured}");

    // A CSV series: fit, forecast, then the same forecast from the saved checkpoint alone.
    let csv = dir.join("series.csv");
    let mut body = String::from("t,value\n");
    for t in 0..400 {
        let x = t as f64;
        body += &format!("{t},{}\n", (0.3 * x).sin() + 0.5 * (0.11 * x).sin());
    }
    std::fs::write(&csv, body).unwrap();
    let c = csv.to_str().unwrap();
    let f1 = dir.join("f1");
    let out1 = ok(&[
        "forecast",
        "--csv",
        c,
        "--column",
        "value",
        "--horizon",
        "30",
        "--units",
        "150",
        "--out",
        f1.to_str().unwrap(),
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f1.join("summary.json")).unwrap()).unwrap();
    let rmse = s["rmse"].as_f64().unwrap();
    assert!(rmse < 0.5 * s["persistence_rmse"].as_f64().unwrap(), "{s}");
    assert!(f1.join("forecast.png").is_file() && f1.join("forecast.csv").is_file());
    let f2 = dir.join("f2");
    let ckpt = f1.join("esn.safetensors");
    let out2 = ok(&[
        "forecast",
        "--csv",
        c,
        "--column",
        "value",
        "--horizon",
        "30",
        "--load",
        ckpt.to_str().unwrap(),
        "--out",
        f2.to_str().unwrap(),
    ]);
    let line = |o: &str| {
        o.lines()
            .find(|l| l.starts_with("RMSE"))
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&out1), line(&out2));
    std::fs::remove_dir_all(&dir).ok();
}

/// `forecast --model gru` saves its RNN so that the library rebuilds it with the series'
/// scaling.
#[test]
fn rnn_forecast_model_reloads_through_the_library() {
    let dir = temp("rnn-forecast");
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("t,v\n");
    for t in 0..200 {
        csv += &format!("{t},{:.4}\n", 10.0 + 3.0 * (t as f64 * 0.3).sin());
    }
    let c = write(&dir, "s.csv", &csv);
    let out = dir.join("f");
    ok(&[
        "forecast",
        "--csv",
        c.to_str().unwrap(),
        "--column",
        "v",
        "--model",
        "gru",
        "--steps",
        "30",
        "--hidden",
        "8",
        "--horizon",
        "10",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let saved = unfold::models::load_model::<f32>(out.join("model.safetensors")).unwrap();
    assert_eq!(saved.spec.cell(), unfold::CellKind::Gru);
    let sc = saved.scaler.expect("the series' scaling is saved");
    assert_eq!(sc.names, ["v"]);
    assert!(
        (sc.mean[0] - 10.0).abs() < 0.5 && (sc.std[0] - 2.1).abs() < 0.3,
        "{sc:?}"
    );
}

#[test]
fn forecast_and_esn_reject_bad_input() {
    let dir = temp("fcbad");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, rows: &[&str]| {
        let p = dir.join(name);
        std::fs::write(&p, format!("v\n{}\n", rows.join("\n"))).unwrap();
        p.to_str().unwrap().to_string()
    };
    let constant = write("constant.csv", &["1.5"; 80]);
    bad(
        &[
            "forecast",
            "--csv",
            &constant,
            "--column",
            "v",
            "--out",
            dir.join("a").to_str().unwrap(),
        ],
        "constant",
    );
    let short = write("short.csv", &["1", "2", "3", "4", "5"]);
    bad(&["forecast", "--csv", &short, "--column", "v"], "too few");
    let mut vals: Vec<String> = (0..80)
        .map(|i| format!("{}", (i as f64 * 0.2).sin()))
        .collect();
    vals[40] = "nan".into();
    let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
    let nan = write("nan.csv", &refs);
    bad(
        &["forecast", "--csv", &nan, "--column", "v"],
        "not a finite number",
    );
    bad(
        &["forecast", "--csv", &nan, "--column", "w"],
        "no column 'w'",
    );
    bad(
        &["forecast", "--csv", &nan, "--column", "v", "--model", "tcn"],
        "unknown model",
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let g = garbage.to_str().unwrap();
    bad(
        &["forecast", "--csv", &nan, "--column", "v", "--load", g],
        "safetensors",
    );
    bad(
        &[
            "esn",
            "--leak-rate",
            "0",
            "--out",
            dir.join("b").to_str().unwrap(),
        ],
        "leak rate",
    );
    bad(
        &[
            "esn",
            "--units",
            "3",
            "--connectivity",
            "0.000001",
            "--out",
            dir.join("c").to_str().unwrap(),
        ],
        "cannot be scaled",
    );
    bad(
        &[
            "esn",
            "--ridge",
            "0",
            "--units",
            "20",
            "--spectral-radius",
            "0",
            "--bias-scaling",
            "0",
            "--input-scaling",
            "0",
            "--steps",
            "200",
            "--trials",
            "1",
            "--out",
            dir.join("d").to_str().unwrap(),
        ],
        "singular",
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The `--ts` defaults for long series: gzip input, every K steps averaged into one so that
/// the longest series has at most 300 steps (stored with the scaling, applied again by `eval`),
/// and a bidirectional reader with a mean readout.
#[test]
fn ts_defaults_downsample_long_series_and_read_both_ways() {
    use std::io::Write;
    let dir = temp("ts-long");
    std::fs::create_dir_all(&dir).unwrap();
    let series = |n: usize, seed: usize| {
        let mut s =
            String::from("@problemName Long\n@univariate true\n@classLabel true up down\n@data\n");
        for i in 0..n {
            let up = (i + seed).is_multiple_of(2);
            let v: Vec<String> = (0..400)
                .map(|t| {
                    let ramp = if up { t as f64 } else { 400.0 - t as f64 } / 400.0;
                    format!("{:.3}", ramp + 0.05 * ((t * 7 + i) % 5) as f64)
                })
                .collect();
            s += &format!("{}:{}\n", v.join(","), if up { "up" } else { "down" });
        }
        s
    };
    let gz = |name: &str, body: String| {
        let p = dir.join(name);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(body.as_bytes()).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        p
    };
    let tr = gz("long_TRAIN.ts.gz", series(24, 0));
    let te = gz("long_TEST.ts.gz", series(10, 1));
    let run = dir.join("cls");
    let out = ok(&[
        "train",
        "--ts",
        tr.to_str().unwrap(),
        "--test",
        te.to_str().unwrap(),
        "--steps",
        "60",
        "--hidden",
        "8",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.contains("every 2 steps averaged into one: 400 -> 200 steps"),
        "{out}"
    );
    library_reloads(&run, "classifier", |m| {
        let bidirectional_mean = matches!(
            &m.spec,
            unfold::models::ModelSpec::Classifier { config, readout }
                if config.bidirectional && *readout == unfold::models::Readout::Mean
        );
        bidirectional_mean && m.scaler.as_ref().is_some_and(|s| s.downsample == 2)
    });
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(v["value"].as_f64().unwrap() > 0.9, "{summary}");
    // Both ways and pooled readouts are for classifiers; a bad readout is named.
    bad(
        &["train", "--task", "reber", "--bidirectional"],
        "apply to sequence classifiers",
    );
    bad(
        &["train", "--task", "sines", "--readout", "mean"],
        "apply to sequence classifiers",
    );
    bad(
        &["train", "--task", "parity", "--readout", "max"],
        "--readout",
    );
    // `eval` reads the test file the same way and gets the same score.
    let eval = ok(&["eval", run.to_str().unwrap(), "--json"]);
    let e: serde_json::Value = serde_json::from_str(eval.lines().last().unwrap()).unwrap();
    assert_eq!(e["value"], v["value"], "{eval}");
}

/// Tree runs: a built-in tree task as trees and flat, a bracketed file and a CoNLL-U file;
/// each trains, reloads through the library, and `eval`, `inspect` and `--resume` work.
#[test]
fn tree_runs_train_reload_eval_and_resume() {
    let d = temp("trees");
    let logic = d.join("logic");
    train_tiny("logic", &logic, &["--steps", "30"]);
    library_reloads(&logic, "tree", |s| s.vocab.is_some());
    let cfg = std::fs::read_to_string(logic.join("config.toml")).unwrap();
    assert!(cfg.contains("children = \"2\""), "{cfg}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["eval", logic.to_str().unwrap(), "--json"])).unwrap();
    assert!(j["details"]["test_accuracy_depth_5"].is_number(), "{j}");
    assert!(ok(&["inspect", logic.to_str().unwrap()]).contains("tree.weight_hh"));
    ok(&[
        "train",
        "--resume",
        logic.to_str().unwrap(),
        "--steps",
        "40",
        "--quiet",
    ]);
    let flat = d.join("flat");
    train_tiny("logic", &flat, &["--flat"]);
    library_reloads(&flat, "classifier", |_| true);

    std::fs::create_dir_all(&d).unwrap();
    let sst = d.join("sst.txt");
    let line = "(3 (2 the) (4 (3 good) (2 film)))\n(1 (2 a) (0 (0 bad) (2 (2 old) (2 plot))))\n";
    std::fs::write(&sst, line.repeat(10)).unwrap();
    let run = d.join("sst");
    ok(&[
        "train",
        "--trees",
        sst.to_str().unwrap(),
        "--steps",
        "20",
        "--hidden",
        "8",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    library_reloads(&run, "tree", |s| s.vocab.is_some());
    let conllu = d.join("dep.conllu");
    let sent = "1\tthe\t_\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\t_\tNOUN\t_\t_\t3\tnsubj\t_\t_\n\
                3\tbarks\t_\tVERB\t_\t_\t0\troot\t_\t_\n\n";
    std::fs::write(&conllu, sent.repeat(6)).unwrap();
    let run = d.join("dep");
    let out = ok(&[
        "train",
        "--trees",
        conllu.to_str().unwrap(),
        "--steps",
        "20",
        "--hidden",
        "8",
        "--tree-label",
        "deprel",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        out.contains("dependency trees") && out.contains("every node"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_tree_input_is_a_clear_error() {
    let d = temp("bad-trees");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("t.txt");
    std::fs::write(&f, "(1 (2 a) (3 b)\n(1 (2 c) (3 d))\n").unwrap();
    let p = f.to_str().unwrap();
    bad(&["train", "--trees", p, "--steps", "5"], "never closed");
    std::fs::write(
        &f,
        "1\ta\t_\tX\t_\t_\t2\t_\t_\t_\n2\tb\t_\tX\t_\t_\t1\t_\t_\t_\n\n",
    )
    .unwrap();
    bad(&["train", "--trees", p, "--steps", "5"], "no root");
    std::fs::write(&f, "(1 (2 a) (3 b) (4 c))\n".repeat(4)).unwrap();
    bad(
        &["train", "--trees", p, "--children", "2", "--steps", "5"],
        "3 children",
    );
    bad(
        &["train", "--task", "arith", "--model", "gru"],
        "rnn (TreeRNN) or lstm",
    );
    bad(&["train", "--task", "adding", "--flat"], "--flat applies");
    bad(
        &["train", "--task", "arith", "--children", "0"],
        "--children",
    );
    bad(
        &["train", "--task", "arith", "--outputs", "leaves"],
        "--outputs",
    );
    bad(&["train", "--trees", p, "--text", p], "at most one");
    let _ = std::fs::remove_dir_all(&d);
}

/// A CSV of `n` 4x4 grey images in two classes (bright top half or bright bottom half).
fn grid_csv(n: usize) -> String {
    let mut s = (0..16).map(|i| format!("p{i},")).collect::<String>() + "label\n";
    for k in 0..n {
        let top = k % 2 == 0;
        for p in 0..16 {
            let bright = (p < 8) == top;
            s.push_str(&format!(
                "{},",
                if bright {
                    10 + (k * p) % 7
                } else {
                    (k + p) % 3
                }
            ));
        }
        s.push_str(if top { "top\n" } else { "bottom\n" });
    }
    s
}

/// A plain (P2) PGM image.
fn pgm(w: usize, h: usize, v: impl Fn(usize) -> u8) -> String {
    let px: Vec<String> = (0..w * h).map(|p| v(p).to_string()).collect();
    format!("P2\n{w} {h}\n255\n{}\n", px.join(" "))
}

#[test]
fn grid_runs_train_reload_eval_and_resume() {
    let d = temp("grids");
    let maze = d.join("maze");
    train_tiny("maze", &maze, &["--steps", "30", "--length", "5"]);
    library_reloads(&maze, "grid", |_| true);
    assert!(maze.join("sweeps.png").exists() && maze.join("sweeps.svg").exists());
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["eval", maze.to_str().unwrap(), "--json"])).unwrap();
    assert!(j["details"]["test_images_all_right"].is_number(), "{j}");
    assert!(ok(&["inspect", maze.to_str().unwrap()]).contains("grid.1.br.weight_hh"));
    ok(&[
        "train",
        "--resume",
        maze.to_str().unwrap(),
        "--steps",
        "40",
        "--quiet",
    ]);

    std::fs::create_dir_all(&d).unwrap();
    let csv = d.join("images.csv");
    std::fs::write(&csv, grid_csv(40)).unwrap();
    let c = csv.to_str().unwrap();
    for (name, extra) in [
        ("md", vec![]),
        ("renet", vec!["--renet"]),
        (
            "x1",
            vec!["--sweeps", "1", "--readout", "last", "--model", "rnn"],
        ),
        ("flat", vec!["--flat"]),
    ] {
        let run = d.join(name);
        let mut args = vec![
            "train",
            "--grid",
            c,
            "--steps",
            "20",
            "--hidden",
            "8",
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ];
        args.extend(extra);
        ok(&args);
        let kind = if name == "flat" { "classifier" } else { "grid" };
        library_reloads(&run, kind, |s| {
            s.scaler
                .as_ref()
                .is_some_and(|sc| sc.classes == ["bottom", "top"])
        });
    }
    // Class folders of PGM images.
    let dir = d.join("folders");
    for (class, bright) in [("dark", 20u8), ("light", 220u8)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for k in 0..8u8 {
            let img = pgm(3, 4, |p| bright.wrapping_add(k).wrapping_add(p as u8));
            std::fs::write(dir.join(class).join(format!("{k}.pgm")), img).unwrap();
        }
    }
    let run = d.join("pgm");
    let out = ok(&[
        "train",
        "--grid",
        dir.to_str().unwrap(),
        "--steps",
        "10",
        "--hidden",
        "8",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.contains("16 images of 4x3x1, 2 classes"), "{out}");
    // Class folders of colour PNG images.
    let dir = d.join("png");
    for (class, red) in [("red", 230u8), ("blue", 10u8)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for k in 0..8u8 {
            let img = image::RgbImage::from_fn(5, 2, |x, y| {
                image::Rgb([red, (x * 20 + y) as u8 + k, 255 - red])
            });
            img.save(dir.join(class).join(format!("{k}.png"))).unwrap();
        }
    }
    let run = d.join("png-run");
    let out = ok(&[
        "train",
        "--grid",
        dir.to_str().unwrap(),
        "--steps",
        "10",
        "--hidden",
        "8",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.contains("16 images of 2x5x3, 2 classes"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_grid_input_is_a_clear_error() {
    let d = temp("bad-grids");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("g.csv");
    std::fs::write(&f, grid_csv(20)).unwrap();
    let p = f.to_str().unwrap();
    bad(&["train", "--grid", p, "--grid-shape", "3x3"], "not 3x3x1");
    bad(
        &["train", "--grid", p, "--grid-shape", "4by4"],
        "--grid-shape",
    );
    bad(&["train", "--grid", p, "--sweeps", "3"], "--sweeps 3");
    bad(
        &["train", "--grid", p, "--renet", "--sweeps", "2"],
        "--renet reads",
    );
    bad(
        &["train", "--grid", p, "--renet", "--readout", "last"],
        "--renet reads",
    );
    bad(
        &["train", "--grid", p, "--model", "gru"],
        "rnn (MD-RNN) or lstm",
    );
    bad(&["train", "--grid", p, "--text", p], "at most one");
    bad(&["tasks", "--threads", "1000000"], "cores; give at most");
    bad(
        &["train", "--task", "maze", "--flat"],
        "--flat reads images",
    );
    bad(
        &["train", "--task", "adding", "--sweeps", "2"],
        "apply to grid runs",
    );
    bad(
        &["train", "--task", "maze", "--length", "1"],
        "at least 2x2",
    );
    bad(
        &["train", "--task", "maze", "--train-size", "1000000000"],
        "at most 400 million cells",
    );
    std::fs::write(&f, "1,2,3,4,5,6,a\n").unwrap();
    bad(&["train", "--grid", p], "not a square");
    std::fs::write(&f, "1,2,3,4,a\n1,2,3,4,b\n1,x,3,4,a\n").unwrap();
    bad(&["train", "--grid", p], "line 3");
    bad(
        &["train", "--grid", d.join("none.csv").to_str().unwrap()],
        "none.csv",
    );
    let dir = d.join("folders");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("a").join("0.pgm"), pgm(3, 3, |_| 1)).unwrap();
    std::fs::write(dir.join("a").join("1.pgm"), pgm(4, 3, |_| 1)).unwrap();
    bad(
        &["train", "--grid", dir.to_str().unwrap()],
        "where the images before",
    );
    std::fs::write(dir.join("a").join("1.pgm"), "P2\n3 3\n255\n1 2\n").unwrap();
    bad(
        &["train", "--grid", dir.to_str().unwrap()],
        "not a readable image",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_quick_lab_runs_every_model_and_writes_its_report() {
    let dir = temp("lab");
    let d = dir.to_str().unwrap();
    let out = ok(&["lab", "--quick", "--out", d, "--jobs", "1"]);
    assert!(out.contains("20 runs"), "{out}");
    for m in [
        "rnn",
        "irnn",
        "rnn-clip",
        "leaky",
        "clockwork",
        "dt",
        "lstm",
        "gru",
        "esn",
    ] {
        assert!(
            out.contains(&format!("\n{m:<10}")),
            "{m} in the table: {out}"
        );
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>"));
    assert!(html.matches("<svg").count() >= 17, "every plot inline");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 20);
    let rnn = &runs[0];
    assert_eq!(
        (rnn["model"].as_str(), rnn["length"].as_u64()),
        (Some("rnn"), Some(12))
    );
    assert_eq!(
        rnn["first_probe"]["grad_by_lag"].as_array().unwrap().len(),
        12
    );
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 21);
    for p in [
        "lag-start",
        "lag-end",
        "eigenvalues",
        "radius",
        "clipping",
        "success",
    ] {
        let svg = std::fs::read_to_string(dir.join("plots").join(format!("{p}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{p}");
    }
    let log = std::fs::read_to_string(dir.join("runs/adding-lstm-T24-s1/metrics.jsonl")).unwrap();
    assert!(log.contains("\"split\":\"probe\"") && log.contains("\"grad_norm_clipped\""));
    // Same seed, same lab.
    let again = temp("lab-again");
    ok(&[
        "lab",
        "--quick",
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("results.json")).unwrap())
            .unwrap();
    for (x, y) in runs.iter().zip(a["runs"].as_array().unwrap()) {
        assert_eq!(x["curve"], y["curve"], "{}", x["model"]);
    }
    bad(&["lab", "--task", "sorting"], "unknown lab task");
    bad(&["lab", "--models", "rnn,transformer"], "unknown lab model");
    bad(
        &["lab", "--quick", "--lengths", "12,x"],
        "not a whole number",
    );
    bad(&["lab", "--task", "order", "--lengths", "5"], "at least 10");
    bad(
        &["lab", "--task", "digits", "--digits", "/nonexistent.csv"],
        "nonexistent",
    );
    bad(&["lab", "--quick", "--lr=-1"], "--lr");
    bad(&["lab", "--quick", "--radius", "inf"], "--radius");
    bad(&["lab", "--quick", "--jobs", "100000"], "--jobs");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&again);
}

#[test]
fn train_takes_an_initialisation_and_records_probes_on_request() {
    let dir = temp("init-probe");
    train_tiny(
        "adding",
        &dir,
        &[
            "--model",
            "rnn-relu",
            "--init",
            "identity",
            "--probe-every",
            "10",
            "--length",
            "12",
        ],
    );
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let probes: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["split"] == "probe")
        .collect();
    let steps: Vec<u64> = probes.iter().map(|p| p["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![1, 10, 20]);
    // At step 1 the IRNN's W_hh is still the identity: every eigenvalue is 1.
    let ev = probes[0]["weight_eigenvalues"].as_array().unwrap();
    assert_eq!(ev.len(), 8);
    for e in ev {
        assert!((e[0].as_f64().unwrap() - 1.0).abs() < 1e-4 && e[1].as_f64().unwrap().abs() < 1e-4);
    }
    assert_eq!(probes[0]["grad_by_lag"].as_array().unwrap().len(), 12);
    assert!(log.contains("\"grad_norm_clipped\""));
    // The setting is kept with the run.
    let toml = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(toml.contains("init = \"identity\""), "{toml}");
    let _ = std::fs::remove_dir_all(&dir);
    bad(&["train", "--task", "adding", "--init", "glorot"], "--init");
    bad(
        &[
            "train",
            "--task",
            "arith",
            "--init",
            "orthogonal",
            "--steps",
            "1",
        ],
        "not to trees",
    );
}

#[test]
fn a_run_directory_belongs_to_one_run() {
    let dir = temp("one-run");
    let d = dir.to_str().unwrap();
    train_tiny("parity", &dir, &[]);
    // A second run into the same directory is refused; nothing of the first is touched.
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    bad(
        &["train", "--task", "parity", "--steps", "5", "--out", d],
        "already holds a run",
    );
    bad(&["esn", "--out", d], "--overwrite");
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        before
    );
    // --overwrite replaces it: the log holds one run only.
    train_tiny("parity", &dir, &["--overwrite", "--seed", "7"]);
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let firsts = log
        .lines()
        .filter(|l| l.starts_with("{\"step\":1,\"split\":\"train\""))
        .count();
    assert_eq!(firsts, 1, "{log}");
    assert!(!dir.join(".unfold.lock").exists(), "released at the end");
    // While a run holds the directory, another is refused with the holder named.
    let mut child = Command::new(env!("CARGO_BIN_EXE_unfold"))
        .args(["train", "--resume", d, "--steps", "100000000", "--quiet"])
        .env("UNFOLD_THREADS", "1")
        .spawn()
        .unwrap();
    let lock = dir.join(".unfold.lock");
    for _ in 0..500 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(lock.exists(), "the running resume holds the lock");
    bad(
        &["train", "--resume", d, "--steps", "30"],
        &format!("process {}", child.id()),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed run's lock is stale: the next run takes it over.
    assert!(lock.exists());
    ok(&[
        "train",
        "--task",
        "parity",
        "--out",
        d,
        "--overwrite",
        "--steps",
        "5",
        "--quiet",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `unfold ARGS`, waits until `file` has content (the run is training), sends `signal`
/// (`-INT`, `-TERM`) and returns how the process ended.
fn interrupt_after(args: &[&str], file: &Path, signal: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_unfold"))
        .args(args)
        .env("UNFOLD_THREADS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..1000 {
        if std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupt_checkpoints_says_how_to_resume_and_a_resume_cleans_up() {
    let dir = temp("interrupt");
    let d = dir.to_str().unwrap();
    let args = [
        "train",
        "--task",
        "parity",
        "--steps",
        "100000000",
        "--eval-every",
        "1000000",
        "--out",
        d,
        "--quiet",
    ];
    let out = interrupt_after(&args, &dir.join("metrics.jsonl"), "-INT");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted at step") && err.contains("--resume"),
        "{err}"
    );
    assert!(!dir.join(".unfold.lock").exists(), "the lock is released");
    // The checkpoint holds the step the message names.
    let step: u64 = err
        .split("interrupted at step ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let ck = unfold::checkpoint::TensorFile::read(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.metadata["train.step"], step.to_string());
    // A half-written file of a killed writer is removed on resume, and the run continues.
    std::fs::write(dir.join(".checkpoint.safetensors.99999.tmp"), b"partial").unwrap();
    let more = (step + 3).to_string();
    ok(&["train", "--resume", d, "--steps", &more, "--quiet"]);
    assert!(!dir.join(".checkpoint.safetensors.99999.tmp").exists());
    let ck = unfold::checkpoint::TensorFile::read(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.metadata["train.step"], more);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_lab_still_writes_its_report() {
    let dir = temp("lab-interrupt");
    let d = dir.to_str().unwrap();
    let args = [
        "lab",
        "--quick",
        "--models",
        "rnn,lstm",
        "--steps",
        "100000000",
        "--full-budget",
        "--out",
        d,
        "--jobs",
        "1",
        "--quiet",
    ];
    let log = dir.join("runs/adding-rnn-T12-s1/metrics.jsonl");
    let out = interrupt_after(&args, &log, "-TERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted: 0 of 4 runs finished"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs[0]["interrupted"], true, "{}", runs[0]);
    assert!(runs[1]["error"].as_str().unwrap().contains("interrupted"));
    assert!(dir.join("report.html").exists() && !dir.join(".unfold.lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
