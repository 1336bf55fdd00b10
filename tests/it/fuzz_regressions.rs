//! Regression tests for the fuzz targets in `fuzz/` (see docs/benchmarks.md, "Fuzzing").
//!
//! Every file under `tests/fuzz_regressions/<target>/` (inputs a fuzz run crashed on,
//! minimised with `cargo fuzz tmin`, and hand-made hostile inputs), the shipped seeds and
//! a few generated inputs go through the targets' own code: `fuzz/src/lib.rs` is included
//! below as a module, so nothing here re-implements what the fuzzer drove. A panic fails
//! the test, and so does an input that runs longer than [`DEADLINE`] (an endless loop).
//! A file whose name starts with `invalid-` must also be rejected with at least one error.

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use yanzhen::core::diagnostic::{Diagnostics, Severity};

/// Longest acceptable run of one input in an unoptimised test build. Generous: it only
/// has to tell "slow" from "never ends".
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Workflow,
    Directory,
    Calendar,
}

impl Target {
    const ALL: [Target; 3] = [Target::Workflow, Target::Directory, Target::Calendar];

    fn dir_name(self) -> &'static str {
        match self {
            Target::Workflow => "workflow",
            Target::Directory => "directory",
            Target::Calendar => "calendar",
        }
    }
}

/// What one run of a target said.
#[derive(Debug)]
struct Outcome {
    /// The input was accepted (a workflow, directory or calendar came back).
    accepted: bool,
    /// Error diagnostics (or calendar file errors).
    errors: usize,
}

/// The stack of a tokio worker thread, where the daemon validates console drafts.
const WORKER_STACK: usize = 2 << 20;

/// The stack for documents nested up to the YAML parser's limit (255 levels of block or
/// flow collections; deeper is a syntax error). Parsing recurses once per level: an
/// optimised build needs less than 512 KiB for 255 levels (measured with the fuzz build
/// under `ulimit -s 512`), but this unoptimised test build needs about 40 KiB a level.
const NESTING_STACK: usize = 64 << 20;

/// Run `data` through `target` on a thread of its own with a worker's stack, failing on a
/// panic or after [`DEADLINE`].
fn run(target: Target, name: &str, data: Vec<u8>) -> Outcome {
    try_run(target, name, data, WORKER_STACK).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run`] with a given stack size, returning a panic or a time-out as an error message.
/// (A stack overflow aborts the whole test binary: it cannot be returned.)
fn try_run(target: Target, name: &str, data: Vec<u8>, stack: usize) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let thread_name = format!("{}:{name}", target.dir_name());
    std::thread::Builder::new()
        .name(thread_name)
        .stack_size(stack)
        .spawn(move || {
            let outcome = match target {
                Target::Workflow => {
                    let (wf, d) = harness::workflow(&data);
                    let errors = error_count(&d);
                    assert_eq!(
                        wf.is_some(),
                        errors == 0,
                        "a workflow comes back exactly when there is no error"
                    );
                    Outcome {
                        accepted: wf.is_some(),
                        errors,
                    }
                }
                Target::Directory => {
                    let (dir, d) = harness::directory(&data);
                    let errors = error_count(&d);
                    Outcome {
                        accepted: dir.is_some() && errors == 0,
                        errors,
                    }
                }
                Target::Calendar => match harness::calendar(&data) {
                    Ok(_) => Outcome {
                        accepted: true,
                        errors: 0,
                    },
                    Err(e) => Outcome {
                        accepted: false,
                        errors: e.len(),
                    },
                },
            };
            let _ = tx.send(outcome);
        })
        .expect("spawn");
    let started = Instant::now();
    match rx.recv_timeout(DEADLINE) {
        Ok(o) => Ok(o),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!(
            "{name}: the {target:?} target panicked (its message is printed above)"
        )),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "{name}: the {target:?} target ran for {:?} without finishing",
            started.elapsed()
        )),
    }
}

/// How many of the diagnostics are errors.
fn error_count(d: &Diagnostics) -> usize {
    d.items()
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .count()
}

fn rejected(target: Target, name: &str, o: &Outcome) -> Result<(), String> {
    if !o.accepted && o.errors > 0 {
        Ok(())
    } else {
        Err(format!(
            "{name}: the {target:?} target should reject this input with at least one error, got {o:?}"
        ))
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn saved_inputs_never_panic_and_invalid_ones_are_rejected() {
    let root = harness::repo_root().join("tests/fuzz_regressions");
    let mut count = 0;
    let mut failures = Vec::new();
    for target in Target::ALL {
        for path in files_in(&root.join(target.dir_name())) {
            let name = file_name(&path);
            let data = std::fs::read(&path).expect("read saved input");
            let checked = try_run(target, &name, data, WORKER_STACK).and_then(|o| {
                if name.starts_with("invalid-") {
                    rejected(target, &name, &o)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = checked {
                failures.push(e);
            }
            count += 1;
        }
    }
    assert!(
        count >= 30,
        "only {count} saved inputs found under {root:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_seeds_never_panic() {
    let root = harness::repo_root();
    let workflows = files_in(&root.join("workflows"));
    assert!(!workflows.is_empty());
    for path in workflows {
        let name = file_name(&path);
        let o = run(Target::Workflow, &name, std::fs::read(&path).expect("read"));
        assert!(o.accepted, "shipped workflow {name} is valid: {o:?}");
    }
    let dir = std::fs::read(root.join("config/directory.yaml")).expect("read");
    let o = run(Target::Directory, "directory.yaml", dir);
    assert!(o.accepted, "the shipped directory is valid: {o:?}");
    for path in files_in(&root.join("config/calendar")) {
        let name = file_name(&path);
        let o = run(Target::Calendar, &name, std::fs::read(&path).expect("read"));
        // The target names every input 2025.json: only that year's file can load.
        assert_eq!(o.accepted, name == "2025.json", "{name}: {o:?}");
    }
}

/// Every prefix (cut at a step of bytes, including inside a UTF-8 sequence) of every seed:
/// a small deterministic fuzz run that needs no nightly flags.
#[test]
fn truncated_seeds_never_panic() {
    let root = harness::repo_root();
    let mut seeds: Vec<(Target, PathBuf)> = files_in(&root.join("workflows"))
        .into_iter()
        .map(|p| (Target::Workflow, p))
        .collect();
    seeds.push((Target::Directory, root.join("config/directory.yaml")));
    seeds.push((Target::Calendar, root.join("config/calendar/2025.json")));
    for (target, path) in seeds {
        let name = file_name(&path);
        let data = std::fs::read(&path).expect("read");
        let cuts: Vec<usize> = (0..data.len()).step_by(97).collect();
        let (tx, rx) = mpsc::channel();
        let label = format!("prefixes of {name}");
        let data2 = data.clone();
        std::thread::spawn(move || {
            for cut in cuts {
                let _ = match target {
                    Target::Workflow => harness::workflow(&data2[..cut]).1.has_errors(),
                    Target::Directory => harness::directory(&data2[..cut]).1.has_errors(),
                    Target::Calendar => harness::calendar(&data2[..cut]).is_ok(),
                };
            }
            let _ = tx.send(());
        });
        match rx.recv_timeout(DEADLINE * 4) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{label}: panicked"),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{label}: did not finish"),
        }
    }
}

/// Hostile inputs too large to keep as files: deep nesting, a 2 MB line, a long chain of
/// stages that each count from the next one.
#[test]
fn generated_hostile_inputs_are_rejected() {
    let mut cases: Vec<(&str, usize, Vec<u8>)> = Vec::new();
    let nested = |name, data: String| (name, NESTING_STACK, data.into_bytes());
    cases.push(nested("flow nesting 100000 deep", "[".repeat(100_000)));
    cases.push(nested(
        "mapping nesting 100000 deep",
        "{a: ".repeat(100_000),
    ));
    cases.push(nested(
        "compact sequences 5000 deep",
        "- ".repeat(5_000) + "x",
    ));
    let mut block = String::new();
    for depth in 0..2_000 {
        block.push_str(&" ".repeat(depth));
        block.push_str("k:\n");
    }
    cases.push(nested("block nesting 2000 deep", block));
    let mut deep_stage = String::from("id: t\ntitle: x\nstages:\n  - id: s\n    title: ");
    deep_stage.push_str(&"[".repeat(254));
    deep_stage.push_str(&"]".repeat(254));
    deep_stage.push('\n');
    cases.push(nested("flow nesting 254 deep inside a stage", deep_stage));
    let mut line = String::from("id: t\ntitle: ");
    line.push_str(&"雁".repeat(700_000)); // 2.1 MB on one line
    line.push_str("\nstages: []\n");
    cases.push(("2 MB title line", WORKER_STACK, line.into_bytes()));
    let mut garbage = Vec::with_capacity(2 << 20);
    let mut x: u32 = 0x9e37_79b9;
    while garbage.len() < (2 << 20) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = (x & 0xff) as u8;
        garbage.push(if b == b'\n' { 0 } else { b });
    }
    cases.push(("2 MB line of random bytes", WORKER_STACK, garbage));
    cases.push(("NUL bytes only", WORKER_STACK, vec![0; 4096]));
    let mut failures = Vec::new();
    for (name, stack, data) in &cases {
        for target in Target::ALL {
            let checked = try_run(target, name, data.clone(), *stack)
                .and_then(|o| rejected(target, name, &o));
            if let Err(e) = checked {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 3000 stages where each closes when the next one closes: the planner resolves dates
/// recursively, so a chain this long is refused instead of overflowing a worker thread's
/// stack. 3000 tasks each `after` the next are checked for cycles the same way.
#[test]
fn long_dependency_chain_does_not_overflow_the_stack() {
    let n = 3_000;
    let mut text = String::from("id: t\ntitle: 测试\nexample_start: 2025-03-03\nstages:\n");
    for i in 0..n {
        text.push_str(&format!("  - id: s{i}\n    title: 阶段\n"));
        if i + 1 < n {
            text.push_str(&format!("    closes: {{from: {{close_of: s{}}}}}\n", i + 1));
        } else {
            text.push_str("    closes: {from: round_start, days: 1}\n");
        }
    }
    let o = run(Target::Workflow, "stage chain", text.into_bytes());
    assert!(
        !o.accepted && o.errors > 0,
        "a chain longer than plan::MAX_DATE_CHAIN is an error: {o:?}"
    );

    let mut text = String::from(
        "id: t\ntitle: 测试\nexample_start: 2025-03-03\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 1}\n    tasks:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "      - {{id: t{i}, title: 任务, assignee: {{role: organization_office}}, due: {{from: stage_close}}"
        ));
        if i + 1 < n {
            text.push_str(&format!(", after: [t{}]", i + 1));
        }
        text.push_str("}\n");
    }
    let o = run(Target::Workflow, "task chain", text.into_bytes());
    assert!(o.accepted || o.errors > 0, "{o:?}");
}
