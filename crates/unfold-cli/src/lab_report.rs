//! The lab's report: the table (model x length: success rate, steps to solve, metric, wall
//! time), the plots (gradient norm against lag at the start and end of training, eigenvalues
//! in the complex plane with the unit circle, spectral radius, clipping rate and gradient norm
//! over training, success against length, the metric over training), and the raw numbers as
//! JSON and CSV.

use std::fmt::Write;

use unfold::lab::{LabModel, LabSettings, LabTask, RunResult, RunSpec};
use unfold::probes::ProbeRecord;

use crate::svg::{esc, Chart, Series, PALETTE};

/// Everything a report is made of.
pub struct Report<'a> {
    /// The task.
    pub task: LabTask,
    /// The models, in order.
    pub models: &'a [LabModel],
    /// The seeds.
    pub seeds: &'a [u64],
    /// The shared settings.
    pub settings: &'a LabSettings,
    /// The runs, in plan order.
    pub runs: &'a [RunSpec],
    /// Their results, in the same order.
    pub results: &'a [std::result::Result<RunResult, String>],
    /// The command line.
    pub command: &'a str,
    /// Seconds for the whole lab.
    pub wall_s: f64,
    /// Parallel workers.
    pub jobs: usize,
}

impl Report<'_> {
    fn colour(&self, m: LabModel) -> &'static str {
        let i = self.models.iter().position(|&x| x == m).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    /// The results of one model at one length (every seed).
    fn cell(&self, m: LabModel, len: usize) -> Vec<&std::result::Result<RunResult, String>> {
        self.runs
            .iter()
            .zip(self.results)
            .filter(|(s, _)| s.model == m && s.length == len)
            .map(|(_, r)| r)
            .collect()
    }

    /// The lengths the task actually ran at.
    fn run_lengths(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.runs.iter().map(|r| r.length).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The longest length: the one the per-run plots show.
    fn focus(&self) -> usize {
        self.run_lengths().last().copied().unwrap_or(0)
    }

    /// The first seed's run of `m` at `len`.
    fn first(&self, m: LabModel, len: usize) -> Option<&RunResult> {
        self.runs
            .iter()
            .zip(self.results)
            .find(|(s, _)| s.model == m && s.length == len)
            .and_then(|(_, r)| r.as_ref().ok())
    }
}

/// Summary of one table cell.
struct Cell {
    solved: usize,
    runs: usize,
    failed: usize,
    diverged: usize,
    median_steps: Option<u64>,
    mean_metric: f64,
    mean_wall: f64,
}

fn summarise(rs: &[&std::result::Result<RunResult, String>]) -> Cell {
    let ok: Vec<&RunResult> = rs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut steps: Vec<u64> = ok.iter().filter_map(|r| r.steps_to_solve).collect();
    steps.sort_unstable();
    let n = ok.len().max(1) as f64;
    let metrics: Vec<f64> = ok
        .iter()
        .map(|r| r.metric)
        .filter(|m| m.is_finite())
        .collect();
    Cell {
        solved: ok.iter().filter(|r| r.solved).count(),
        runs: rs.len(),
        failed: rs.len() - ok.len(),
        diverged: ok.iter().filter(|r| r.diverged).count(),
        median_steps: steps.get(steps.len().saturating_sub(1) / 2).copied(),
        mean_metric: if metrics.is_empty() {
            f64::NAN
        } else {
            metrics.iter().sum::<f64>() / metrics.len() as f64
        },
        mean_wall: ok.iter().map(|r| r.wall_s).sum::<f64>() / n,
    }
}

fn length_label(task: LabTask, len: usize) -> String {
    if task.length_meaning().1 {
        format!("T = {len}")
    } else {
        "fixed".into()
    }
}

/// The table as plain text for the terminal.
pub fn text_table(r: &Report) -> String {
    let lens = r.run_lengths();
    let mut out = format!(
        "\n{} — solved/runs, median steps to solve, mean metric ({} >= {})\n{:<10}",
        r.task.name(),
        r.task.criterion().0,
        r.task.criterion().1,
        "model"
    );
    for &l in &lens {
        let _ = write!(out, " {:>24}", length_label(r.task, l));
    }
    out.push_str(&format!(" {:>9}", "wall/run"));
    for &m in r.models {
        let _ = write!(out, "\n{:<10}", m.name());
        let mut walls = Vec::new();
        for &l in &lens {
            let c = summarise(&r.cell(m, l));
            walls.push(if c.runs == 0 { f64::NAN } else { c.mean_wall });
            let text = if c.runs == 0 {
                "not run".to_string()
            } else {
                format!(
                    "{}/{} {:>6} {:.3}{}",
                    c.solved,
                    c.runs,
                    c.median_steps.map_or("-".into(), |s| s.to_string()),
                    c.mean_metric,
                    if c.diverged > 0 { " div" } else { "" }
                )
            };
            let _ = write!(out, " {text:>24}");
        }
        if walls.iter().all(|w| w.is_nan()) {
            let _ = write!(out, " {:>9}", "-");
        } else {
            let w = walls.iter().filter(|w| !w.is_nan()).sum::<f64>()
                / walls.iter().filter(|w| !w.is_nan()).count().max(1) as f64;
            let _ = write!(out, " {:>8.1}s", w);
        }
    }
    out
}

/// The plots, by file name (without `.svg`).
pub fn plots(r: &Report) -> Vec<(String, String)> {
    let focus = r.focus();
    let trained: Vec<LabModel> = r.models.iter().copied().filter(|m| m.trained()).collect();
    let at = length_label(r.task, focus);
    let mut out = Vec::new();
    for (name, which, title) in [
        ("lag-start", true, "at the start of training"),
        ("lag-end", false, "at the end of training"),
    ] {
        let mut c = Chart::new(
            &format!("||dL/dh(t)|| against lag, {title} ({at})"),
            "lag k (steps back from the output)",
            "mean gradient norm (log)",
        );
        c.log_y = true;
        for &m in &trained {
            let p = r.first(m, focus).and_then(|x| {
                if which {
                    x.first_probe.as_ref()
                } else {
                    x.last_probe.as_ref()
                }
            });
            if let Some(p) = p {
                let pts = p
                    .lag
                    .norms
                    .iter()
                    .enumerate()
                    .map(|(k, &n)| (k as f64, n))
                    .collect();
                c.series.push(Series::line(m.name(), pts, r.colour(m)));
            }
        }
        out.push((name.to_string(), c.render()));
    }
    // Eigenvalues: one panel per model, start grey, end coloured.
    let mut panels: Vec<String> = Vec::new();
    for &m in r.models {
        let Some(run) = r.first(m, focus) else {
            continue;
        };
        let spectrum = |p: &Option<ProbeRecord>| -> (Vec<(f64, f64)>, &'static str) {
            match p {
                Some(p) => match &p.weight_eigenvalues {
                    Some(w) => (w.clone(), "W_hh"),
                    None => (p.step_eigenvalues.clone(), "linearised step"),
                },
                None => (Vec::new(), ""),
            }
        };
        let (start, what) = spectrum(&run.first_probe);
        let (end, _) = spectrum(&run.last_probe);
        let mut c = Chart::new(&format!("{} ({what})", m.name()), "re", "im");
        c.complex_plane = true;
        c.size = (320.0, 240.0);
        if m.trained() {
            c.series.push(Series::dots("start", start, "#bbbbbb"));
            c.series.push(Series::dots("end", end, r.colour(m)));
        } else {
            c.series.push(Series::dots("fixed", end, r.colour(m)));
        }
        panels.push(c.render());
    }
    out.push(("eigenvalues".into(), grid_of(&panels, 320.0, 240.0, 3)));
    let over_training =
        |title: &str, y: &str, log: bool, get: &dyn Fn(&RunResult) -> Vec<(u64, f64)>| {
            let mut c = Chart::new(&format!("{title} ({at})"), "step", y);
            c.log_y = log;
            for &m in &trained {
                if let Some(run) = r.first(m, focus) {
                    let pts = get(run).iter().map(|&(s, v)| (s as f64, v)).collect();
                    let name = if run.diverged {
                        format!("{} (diverged)", m.name())
                    } else {
                        m.name().to_string()
                    };
                    c.series.push(Series::line(&name, pts, r.colour(m)));
                }
            }
            c.render()
        };
    out.push((
        "radius".into(),
        over_training(
            "Spectral radius over training",
            "spectral radius",
            false,
            &|x| x.radius.clone(),
        ),
    ));
    out.push((
        "clipping".into(),
        over_training("Share of steps clipped", "clipped share", false, &|x| {
            x.clip_rate.clone()
        }),
    ));
    out.push((
        "grad-norm".into(),
        over_training(
            "Gradient norm before clipping",
            "mean norm (log)",
            true,
            &|x| x.grad_norm.clone(),
        ),
    ));
    out.push((
        "metric".into(),
        over_training(r.task.criterion().0, "metric", false, &|x| x.curve.clone()),
    ));
    let mut c = Chart::new(
        "Share of seeds solved against sequence length",
        r.task.length_meaning().0,
        "solved share",
    );
    c.y_range = Some((-0.05, 1.05));
    // Equal shares would hide each other: each model is nudged by a hair.
    let n = r.models.len() as f64;
    for (i, &m) in r.models.iter().enumerate() {
        let nudge = (i as f64 - (n - 1.0) / 2.0) * 0.006;
        let pts: Vec<(f64, f64)> = r
            .run_lengths()
            .iter()
            .filter_map(|&l| {
                let cell = summarise(&r.cell(m, l));
                (cell.runs > 0).then(|| (l as f64, cell.solved as f64 / cell.runs as f64 + nudge))
            })
            .collect();
        let mut line = Series::line(m.name(), pts, r.colour(m));
        line.marked = true;
        c.series.push(line);
    }
    out.push(("success".into(), c.render()));
    out
}

/// One SVG holding `panels` (each `w x h`) in rows of `per_row`.
fn grid_of(panels: &[String], w: f64, h: f64, per_row: usize) -> String {
    let rows = panels.len().div_ceil(per_row).max(1);
    let (tw, th) = (w * per_row.min(panels.len()).max(1) as f64, h * rows as f64);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{tw}\" height=\"{th}\" \
         viewBox=\"0 0 {tw} {th}\">"
    );
    for (i, p) in panels.iter().enumerate() {
        let (x, y) = ((i % per_row) as f64 * w, (i / per_row) as f64 * h);
        // A nested <svg> placed at (x, y): drop the namespace, add the position.
        let inner = p.replacen(
            "<svg xmlns=\"http://www.w3.org/2000/svg\"",
            &format!("<svg x=\"{x}\" y=\"{y}\""),
            1,
        );
        out.push_str(&inner);
    }
    out.push_str("</svg>");
    out
}

/// The HTML page, plots inline.
pub fn html(r: &Report, plots: &[(String, String)]) -> String {
    let s = r.settings;
    let (metric, threshold) = r.task.criterion();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>unfold lab: {task}</title>\
         <style>body{{font-family:sans-serif;max-width:1250px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;\
         text-align:right}}th{{background:#f4f4f4}}td.m{{text-align:left}}\
         .panels svg{{margin:2px}}code{{background:#f4f4f4;padding:1px 4px}}</style></head><body>\
         <h1>Long-term dependency lab: the {task} task</h1>\
         <p><code>{cmd}</code></p>\
         <p>{runs} runs ({models} models, lengths {lens}, seeds {seeds}) in {wall:.1} s on {jobs} \
         workers. Every trained model: {hidden} hidden units, one layer, at most {steps} steps \
         of {batch} sequences, {opt} with learning rate {lr}, {train} training and {valid} \
         held-out sequences; <code>rnn-clip</code> clips at norm {clip}, the LSTM's forget-gate \
         bias starts at {fb}{radius}; scored and probed every {every} steps; a run stops when it is \
         solved{stop}. A run is <b>solved</b> when its {metric} reaches {threshold} (chance: \
         {chance}).</p>",
        task = r.task.name(),
        cmd = esc(r.command),
        runs = r.runs.len(),
        models = r.models.len(),
        lens = r
            .run_lengths()
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seeds = r
            .seeds
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        wall = r.wall_s,
        jobs = r.jobs,
        hidden = s.hidden,
        steps = s.steps,
        batch = s.batch,
        opt = s.optimizer.name(),
        lr = s.lr,
        train = s.train_size,
        valid = s.valid_size,
        clip = s.clip,
        fb = s.forget_bias,
        radius = s.radius.map_or(String::new(), |r| format!(
            ", <code>rnn</code> and <code>rnn-clip</code> start with W_hh at spectral radius {r}"
        )),
        every = s.eval_every,
        stop = if s.stop_when_solved {
            ""
        } else {
            " (not here: --full-budget)"
        },
        chance = r.task.chance(),
    );
    h.push_str(
        "<h2>Results</h2><p>Each cell: seeds solved / seeds, median steps to solve (of the \
         solved), mean final metric; <i>div</i> marks runs that diverged (a non-finite loss or \
         gradient).</p><table><tr><th>model</th><th>what it is</th>",
    );
    let lens = r.run_lengths();
    for &l in &lens {
        let _ = write!(h, "<th>{}</th>", length_label(r.task, l));
    }
    h.push_str("<th>wall time per run</th></tr>");
    for &m in r.models {
        let _ = write!(
            h,
            "<tr><td class=\"m\"><b>{}</b></td><td class=\"m\">{}</td>",
            m.name(),
            esc(m.summary())
        );
        let mut walls = Vec::new();
        for &l in &lens {
            let c = summarise(&r.cell(m, l));
            if c.runs == 0 {
                h.push_str("<td>not run</td>");
                continue;
            }
            walls.push(c.mean_wall);
            let share = c.solved as f64 / c.runs as f64;
            let bg = format!(
                "hsl({:.0},70%,{:.0}%)",
                120.0 * share,
                if c.runs > 0 { 88.0 } else { 100.0 }
            );
            let _ = write!(
                h,
                "<td style=\"background:{bg}\">{}/{} · {} · {:.3}{}{}</td>",
                c.solved,
                c.runs,
                c.median_steps.map_or("—".into(), |s| format!("{s} steps")),
                c.mean_metric,
                if c.diverged > 0 {
                    format!(" · {} div", c.diverged)
                } else {
                    String::new()
                },
                if c.failed > 0 {
                    format!(" · {} failed", c.failed)
                } else {
                    String::new()
                }
            );
        }
        if walls.is_empty() {
            h.push_str("<td>-</td></tr>");
        } else {
            let w = walls.iter().sum::<f64>() / walls.len() as f64;
            let _ = write!(h, "<td>{w:.1} s</td></tr>");
        }
    }
    h.push_str("</table>");
    if r.task == LabTask::Reber && r.models.contains(&LabModel::Esn) {
        h.push_str(
            "<p>The ESN is not run on the Reber task: its readout is not a generative model, \
             and the task samples strings.</p>",
        );
    }
    let errors: Vec<String> = r
        .runs
        .iter()
        .zip(r.results)
        .filter_map(|(s, x)| {
            x.as_ref()
                .err()
                .map(|e| format!("{}: {}", s.name(), esc(e)))
        })
        .collect();
    if !errors.is_empty() {
        let _ = write!(
            h,
            "<p>Failed runs:</p><ul><li>{}</li></ul>",
            errors.join("</li><li>")
        );
    }
    let get = |n: &str| {
        plots
            .iter()
            .find(|p| p.0 == n)
            .map(|p| p.1.as_str())
            .unwrap_or("")
    };
    let _ = write!(
        h,
        "<h2>Gradients against lag</h2><p>The norm of the loss gradient on the hidden state \
         h(t) for the loss at the output position, against the lag back from it (averaged over \
         sequences and output positions; the first seed at the longest length). A straight \
         falling line on this log scale is exponential vanishing; a rising one, \
         explosion.</p>{}{}\
         <h2>Eigenvalues</h2><p>Of the recurrent matrix W_hh where the cell has one square \
         matrix, else of the linearised step ds(T)/ds(T-1) over the whole state (gated cells); \
         grey at the start, coloured at the end; the dashed circle is the unit circle.</p>{}\
         <h2>Over training</h2>{}{}{}{}\
         <h2>Success against length</h2>{}\
         <p>Raw numbers: <code>results.json</code>, <code>results.csv</code>, and each run's \
         <code>runs/NAME/metrics.jsonl</code> (probe lines have <code>\"split\":\"probe\"</code>).\
         </p></body></html>",
        get("lag-start"),
        get("lag-end"),
        get("eigenvalues"),
        get("radius"),
        get("clipping"),
        get("grad-norm"),
        get("metric"),
        get("success"),
    );
    h
}

/// The settings and every run as JSON.
pub fn json(r: &Report) -> serde_json::Value {
    let s = r.settings;
    let runs: Vec<serde_json::Value> = r
        .runs
        .iter()
        .zip(r.results)
        .map(|(spec, x)| match x {
            Ok(res) => res.to_json(),
            Err(e) => serde_json::json!({
                "task": spec.task.name(), "model": spec.model.name(),
                "length": spec.length, "seed": spec.seed, "error": e,
            }),
        })
        .collect();
    serde_json::json!({
        "task": r.task.name(),
        "criterion": {"metric": r.task.criterion().0, "threshold": r.task.criterion().1},
        "command": r.command,
        "wall_s": r.wall_s,
        "jobs": r.jobs,
        "settings": {
            "hidden": s.hidden, "steps": s.steps, "batch": s.batch, "lr": s.lr,
            "optimizer": s.optimizer.name(), "eval_every": s.eval_every, "clip": s.clip,
            "radius": s.radius, "forget_bias": s.forget_bias, "train_size": s.train_size, "valid_size": s.valid_size,
            "esn_units": s.esn_units, "stop_when_solved": s.stop_when_solved,
        },
        "models": r.models.iter().map(|m| serde_json::json!({"name": m.name(), "summary": m.summary()})).collect::<Vec<_>>(),
        "runs": runs,
    })
}

/// One CSV row per run.
pub fn csv(r: &Report) -> String {
    let mut out = String::from(
        "task,model,length,seed,solved,metric,steps_to_solve,steps,wall_s,final_loss,diverged,\
         lag_slope_start,lag_slope_end,radius_start,radius_end,clip_rate,error\n",
    );
    let num = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or(String::new(), |x| x.to_string())
    };
    for (spec, x) in r.runs.iter().zip(r.results) {
        let _ = write!(
            out,
            "{},{},{},{},",
            spec.task.name(),
            spec.model.name(),
            spec.length,
            spec.seed
        );
        match x {
            Ok(res) => {
                let slope = |p: &Option<ProbeRecord>| p.as_ref().and_then(|p| p.lag.log_slope());
                let clip = if res.clip_rate.is_empty() {
                    None
                } else {
                    Some(
                        res.clip_rate.iter().map(|c| c.1).sum::<f64>() / res.clip_rate.len() as f64,
                    )
                };
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.3},{},{},{},{},{},{},{},",
                    res.solved,
                    num(Some(res.metric)),
                    res.steps_to_solve.map_or(String::new(), |s| s.to_string()),
                    res.steps,
                    res.wall_s,
                    num(Some(res.final_loss)),
                    res.diverged,
                    num(slope(&res.first_probe)),
                    num(slope(&res.last_probe)),
                    num(res.radius.first().map(|p| p.1)),
                    num(res.radius.last().map(|p| p.1)),
                    num(clip),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    ",,,,,,,,,,,,\"{}\"",
                    e.replace('"', "'").replace('\n', " ")
                );
            }
        }
    }
    out
}
