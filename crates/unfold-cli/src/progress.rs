//! Progress of a training run: a bar with loss, throughput, ETA and the latest validation
//! metric when stdout is a terminal; one plain line per validation otherwise; nothing with
//! `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use unfold::train::Event;

/// Draws training events.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    monitor: &'static str,
    loss_sum: f64,
    loss_n: usize,
    last_valid: String,
    tokens_per_sec: f64,
}

impl Progress {
    /// A progress display for a run of `total` steps starting at `start`; `monitor` names the
    /// validation figure shown (`bits`, `accuracy`, `mse`, `loss`).
    pub fn new(total: u64, start: u64, quiet: bool, monitor: &'static str) -> Self {
        let bar = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("valid template"),
            );
            b.set_position(start);
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            quiet,
            monitor,
            loss_sum: 0.0,
            loss_n: 0,
            last_valid: String::from("-"),
            tokens_per_sec: 0.0,
        }
    }

    /// Shows one event.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Step {
                step,
                loss,
                tokens_per_sec,
                ..
            } => {
                self.loss_sum += loss;
                self.loss_n += 1;
                self.tokens_per_sec = *tokens_per_sec;
                if let Some(b) = &self.bar {
                    b.set_position(*step);
                    if step % 10 == 0 {
                        b.set_message(format!(
                            "loss {:.4}  {:.0} tok/s  valid {} {}",
                            loss, tokens_per_sec, self.monitor, self.last_valid
                        ));
                    }
                }
            }
            Event::Eval { step, stats, .. } => {
                let v = stats.metric(self.monitor).unwrap_or(f64::NAN);
                self.last_valid = format!("{v:.4}");
                let train = self.loss_sum / self.loss_n.max(1) as f64;
                (self.loss_sum, self.loss_n) = (0.0, 0);
                if self.bar.is_none() && !self.quiet {
                    println!(
                        "step {step:>7}  train loss {train:.4}  valid loss {:.4}  valid {} {v:.4}  {:.0} tokens/s",
                        stats.mean_nll(),
                        self.monitor,
                        self.tokens_per_sec
                    );
                }
            }
            Event::EarlyStop { step } => {
                self.println(&format!("early stop at step {step}: no improvement"));
            }
            Event::Checkpoint { .. } | Event::Probe(_) => {}
        }
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None if !self.quiet => println!("{line}"),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
