//! One run per run directory. A run takes a lock file in its directory for its lifetime (a
//! second run into the same directory is refused with the holder's process id and command;
//! the lock of a process that no longer exists is taken over), and a directory that already
//! holds something is refused unless the run resumes it (`--resume`) or replaces it
//! (`--overwrite`, which removes the previous run's files first, so no log mixes two runs).
//! Resuming removes the half-written temporary files a killed run can leave.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::BadInput;

/// The lock file's name.
pub const LOCK: &str = ".unfold.lock";

/// What a run's files are called, in any command's run directory: what `--overwrite` removes.
const RUN_FILES: [&str; 15] = [
    "checkpoint.safetensors",
    "best.safetensors",
    "metrics.jsonl",
    "config.toml",
    "summary.json",
    "summary.md",
    "esn.safetensors",
    "forecast.csv",
    "report.html",
    "results.json",
    "results.csv",
    "loss.png",
    "loss.svg",
    "valid.png",
    "valid.svg",
];

/// Subdirectories a run writes (the lab's plots and runs).
const RUN_DIRS: [&str; 2] = ["plots", "runs"];

/// How a run uses its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new run: the directory must be empty unless `overwrite`.
    Fresh {
        /// Replace a previous run's files.
        overwrite: bool,
    },
    /// Continuing the run already there.
    Resume,
}

/// The lock of a run directory, released when dropped (at the end of the run, or when the
/// process ends: a killed run leaves a lock whose process is gone, which the next run takes
/// over).
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks whether the process exists and may be signalled.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Takes the lock file of `dir`, or says who holds it.
fn lock(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let cmd = std::env::args().collect::<Vec<_>>().join(" ");
                writeln!(f, "{}\n{now}\n{cmd}", std::process::id())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(RunLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut lines = text.lines();
                let pid = lines.next().and_then(|l| l.trim().parse::<u32>().ok());
                let started = lines.next().and_then(|l| l.trim().parse::<u64>().ok());
                let cmd = lines.next().unwrap_or("").to_string();
                match pid {
                    Some(p) if alive(p) && p != std::process::id() => {
                        let ago = started.and_then(|s| {
                            SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .ok()
                                .map(|n| n.as_secs().saturating_sub(s))
                        });
                        return Err(BadInput(format!(
                            "{} is in use by another run: process {p} (`{cmd}`{}); wait for it \
                             to end or give another --out",
                            dir.display(),
                            ago.map_or(String::new(), |a| format!(", started {a} s ago"))
                        ))
                        .into());
                    }
                    // The holder is gone (killed, crashed): the lock is stale.
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Err(e) => {
                return Err(
                    BadInput(format!("{}: cannot take its lock: {e}", dir.display())).into(),
                )
            }
        }
    }
    Err(BadInput(format!(
        "{}: its lock keeps reappearing; is another run starting there?",
        dir.display()
    ))
    .into())
}

/// Creates `dir` if needed and claims it for this run (see the module's rules).
pub fn claim(dir: &Path, how: Claim) -> Result<RunLock> {
    if dir.is_file() {
        return Err(BadInput(format!(
            "--out {}: is a file, not a directory",
            dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let guard = lock(dir)?;
    if how == Claim::Resume {
        // Half-written files of a run killed while writing (`.NAME.PID.tmp`) are not part of it.
        for e in std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") && e.path().is_file() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Claim::Fresh { overwrite } = how {
        let mut held: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK)
            .collect();
        held.sort();
        if !held.is_empty() && !overwrite {
            let shown: Vec<&str> = held.iter().take(4).map(String::as_str).collect();
            return Err(BadInput(format!(
                "{} already holds a run ({}{}); give --resume {} to continue it, --overwrite to \
                 replace it, or another --out",
                dir.display(),
                shown.join(", "),
                if held.len() > 4 { ", ..." } else { "" },
                dir.display()
            ))
            .into());
        }
        if overwrite {
            for name in &held {
                let p = dir.join(name);
                let ours = RUN_FILES.contains(&name.as_str())
                    || name.ends_with(".png")
                    || name.ends_with(".svg")
                    || name.starts_with(".checkpoint.");
                if ours && p.is_file() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                } else if RUN_DIRS.contains(&name.as_str()) && p.is_dir() {
                    std::fs::remove_dir_all(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                }
            }
        }
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("unfold-rundir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_directory_belongs_to_one_run() {
        let d = temp("one");
        let fresh = Claim::Fresh { overwrite: false };
        let first = claim(&d, fresh).unwrap();
        assert!(d.join(LOCK).exists());
        std::fs::write(d.join("metrics.jsonl"), "{}\n").unwrap();
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        drop(first);
        assert!(!d.join(LOCK).exists(), "released at the end of the run");
        let e = claim(&d, fresh).unwrap_err().to_string();
        assert!(
            e.contains("already holds a run") && e.contains("metrics.jsonl"),
            "{e}"
        );
        assert!(!d.join(LOCK).exists(), "a refused run leaves no lock");
        let again = claim(&d, Claim::Resume).unwrap();
        drop(again);
        let o = claim(&d, Claim::Fresh { overwrite: true }).unwrap();
        assert!(!d.join("metrics.jsonl").exists(), "the old log is gone");
        assert!(
            d.join("notes.txt").exists(),
            "files that are not a run's are kept"
        );
        drop(o);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_live_holder_is_named_and_a_dead_one_is_taken_over() {
        let d = temp("lock");
        std::fs::create_dir_all(&d).unwrap();
        // A live process that is not this one: the parent, or init.
        let parent = std::os::unix::process::parent_id();
        std::fs::write(
            d.join(LOCK),
            format!("{parent}\n0\nunfold train --task copy\n"),
        )
        .unwrap();
        let e = claim(&d, Claim::Resume).unwrap_err().to_string();
        assert!(
            e.contains("in use by another run") && e.contains(&parent.to_string()),
            "{e}"
        );
        assert!(e.contains("unfold train --task copy"), "{e}");
        // A process id that cannot exist.
        std::fs::write(d.join(LOCK), "4294967295\n0\nunfold lab\n").unwrap();
        let l = claim(&d, Claim::Resume).unwrap();
        let text = std::fs::read_to_string(d.join(LOCK)).unwrap();
        assert!(text.starts_with(&std::process::id().to_string()));
        drop(l);
        let _ = std::fs::remove_dir_all(&d);
    }
}
