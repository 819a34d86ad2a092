//! The data of a tree run: a built-in tree task (`arith`, `logic`) read as trees, or with
//! `--flat` as bracketed sequences for a chain model; or a file of bracketed or CoNLL-U trees
//! (`--trees FILE`), split 80/10/10 by a seeded shuffle, words seen once in training mapped to
//! `<unk>`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use unfold::data::tree::{parse_bracketed, parse_conllu, Brackets, ConlluLabel, Tree};
use unfold::data::tree_tasks::{self, flat_dataset, tree_set};
use unfold::data::{TreeExample, TreeSet, Vocab};
use unfold::layers::tree::Children;
use unfold::layers::OutputKind;
use unfold::models::{InputSpec, ModelKind, Shape, TreeOutputs};
use unfold::rng::Rng;
use unfold::score::HeldOut;

use crate::data::{read, Prepared, TrainData, Valid};
use crate::settings::Settings;
use crate::BadInput;

/// A built-in tree task.
pub fn task(s: &Settings) -> Result<Prepared> {
    let info = tree_tasks::find(&s.task).expect("checked by the caller");
    let depth = if s.length == 0 { info.depth } else { s.length };
    let d = tree_tasks::generate(&s.task, depth, s.train_size, s.valid_size, s.seed)
        .map_err(|e| BadInput(e.to_string()))?;
    let labels = d.label_vocab();
    let output = OutputKind::Categorical {
        classes: labels.len(),
        pad: None,
    };
    let summary = format!(
        "{}: {} ({} training expressions of depth 1-{depth}, {} test expressions of depth {}-{}{})",
        s.task,
        info.summary,
        d.train.len(),
        d.test.len(),
        depth + 1,
        2 * depth,
        if s.flat {
            ", read as flat bracketed sequences"
        } else {
            ", read as trees"
        }
    );
    // The same expressions as trees, or written out for a chain model (`--flat`).
    let (kind, words, train, valid, test, children) = if s.flat {
        let words = d.flat_vocab();
        let enc = |t: &[Tree]| flat_dataset::<f32>(t, &words, &labels);
        let (train, valid, test) = (enc(&d.train)?, enc(&d.valid)?, enc(&d.test)?);
        (
            ModelKind::Classifier,
            words,
            TrainData::Sequences(train),
            Valid::Sequences(valid),
            HeldOut::Sequences(test),
            None,
        )
    } else {
        let words = d.word_vocab();
        let enc = |t: &[Tree]| tree_set::<f32>(t, &words, &labels);
        let (train, valid, test) = (enc(&d.train)?, enc(&d.valid)?, enc(&d.test)?);
        let outputs = if s.outputs == "nodes" {
            TreeOutputs::Nodes
        } else {
            TreeOutputs::Root
        };
        let children = s.tree_children(2, false).map_err(BadInput)?;
        (
            ModelKind::Tree(outputs),
            words,
            TrainData::Trees(train),
            Valid::Trees(valid),
            HeldOut::Trees(test),
            Some(children),
        )
    };
    Ok(Prepared {
        summary,
        metric: info.metric.into(),
        threshold: Some(info.threshold),
        higher_is_better: true,
        shape: Shape {
            kind,
            input: InputSpec::Symbols {
                vocab: words.len(),
                dim: s.embed,
            },
            output,
        },
        train,
        valid,
        test,
        vocab: Some(words),
        src_vocab: None,
        scaler: None,
        labels: Some(labels),
        children,
    })
}

/// True when the text looks like CoNLL-U: a non-comment line with at least ten tab-separated
/// columns.
fn looks_like_conllu(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.split('\t').count() >= 10)
}

/// A file of trees.
pub fn file(path: &Path, s: &Settings) -> Result<Prepared> {
    let body = read(path)?;
    let p = path.display();
    let conllu = match s.tree_format.as_str() {
        "conllu" => true,
        "bracketed" => false,
        _ => looks_like_conllu(&body),
    };
    let mut trees = if conllu {
        let label = match s.tree_label.as_str() {
            "xpos" => ConlluLabel::Xpos,
            "deprel" => ConlluLabel::Deprel,
            _ => ConlluLabel::Upos,
        };
        parse_conllu(&body, label)
    } else {
        parse_bracketed(&body, Brackets::Labelled)
    }
    .map_err(|e| BadInput(format!("{p}: {e}")))?;
    if trees.len() < 3 {
        bail!(BadInput(format!(
            "{p}: {} trees; a tree run needs at least 3 (training, validation, test)",
            trees.len()
        )));
    }
    let mut rng = Rng::new(s.seed ^ 0x7EE5);
    rng.shuffle(&mut trees);
    let n = trees.len();
    let (a, b) = ((n * 8 / 10).max(1), (n * 9 / 10).max(2));
    let (train, valid, test) = (&trees[..a], &trees[a..b], &trees[b..]);
    // Words seen at least twice in training; the rest read as <unk>, so that the model learns
    // what to do with a word it has not seen.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in train {
        for w in t.words() {
            *counts.entry(w).or_default() += 1;
        }
    }
    let kept: Vec<&str> = counts
        .iter()
        .filter(|(_, &c)| c >= 2)
        .map(|(&w, _)| w)
        .collect();
    let words = Vocab::words_of(if kept.is_empty() {
        counts.keys().copied().collect::<Vec<_>>()
    } else {
        kept
    })
    .map_err(|e| BadInput(format!("{p}: {e}")))?;
    let labels = Vocab::words_of(
        trees
            .iter()
            .flat_map(|t| t.nodes().iter().filter_map(|n| n.label.as_deref())),
    )
    .map_err(|e| BadInput(format!("{p}: {e}")))?;
    if labels.len() == unfold::data::vocab::SPECIALS {
        bail!(BadInput(format!(
            "{p}: no node has a label; a tree run learns labels"
        )));
    }
    let outputs = match s.outputs.as_str() {
        "root" => TreeOutputs::Root,
        "nodes" => TreeOutputs::Nodes,
        _ if conllu => TreeOutputs::Nodes,
        _ => TreeOutputs::Root,
    };
    let max_arity = trees.iter().map(Tree::max_arity).max().unwrap_or(0);
    let children = s.tree_children(max_arity, conllu).map_err(BadInput)?;
    if let Children::Nary { n } = children {
        if max_arity > n {
            bail!(BadInput(format!(
                "{p}: a node has {max_arity} children; --children {n} reads at most {n} (use \
                 --children sum)"
            )));
        }
    }
    let enc = |ts: &[Tree]| -> Result<TreeSet<f32>> {
        let ex = ts
            .iter()
            .map(|t| TreeExample::from_tree(t, &words, Some(&labels)))
            .collect::<unfold::Result<Vec<_>>>()
            .map_err(|e| BadInput(format!("{p}: {e}")))?;
        Ok(TreeSet::new(ex).map_err(|e| BadInput(format!("{p}: {e}")))?)
    };
    let nodes: usize = trees.iter().map(Tree::len).sum();
    let baseline = match outputs {
        TreeOutputs::Nodes => format!(
            " (the most frequent training label of each word scores {:.4} on the test trees)",
            word_label_baseline(train, test)
        ),
        TreeOutputs::Root => String::new(),
    };
    let summary = format!(
        "{} trees of {p}: {n} trees ({a} training, {} validation, {} test), {nodes} nodes, {} \
         words kept, {} labels; predicting {}",
        if conllu { "dependency" } else { "bracketed" },
        b - a,
        n - b,
        words.len() - unfold::data::vocab::SPECIALS,
        labels.len() - unfold::data::vocab::SPECIALS,
        match outputs {
            TreeOutputs::Root => "each tree's root label",
            TreeOutputs::Nodes => "every node's label",
        }
    ) + &baseline;
    Ok(Prepared {
        summary,
        metric: match outputs {
            TreeOutputs::Root => "test accuracy at the roots".into(),
            TreeOutputs::Nodes => "test accuracy at every labelled node".into(),
        },
        threshold: None,
        higher_is_better: true,
        shape: Shape {
            kind: ModelKind::Tree(outputs),
            input: InputSpec::Symbols {
                vocab: words.len(),
                dim: s.embed,
            },
            output: OutputKind::Categorical {
                classes: labels.len(),
                pad: None,
            },
        },
        train: TrainData::Trees(enc(train)?),
        valid: Valid::Trees(enc(valid)?),
        test: HeldOut::Trees(enc(test)?),
        vocab: Some(words),
        src_vocab: None,
        scaler: None,
        labels: Some(labels),
        children: Some(children),
    })
}

/// Accuracy on the labelled nodes of `test` of the reference that knows no structure: each
/// word's most frequent label in `train` (the overall most frequent label for unseen words).
fn word_label_baseline(train: &[Tree], test: &[Tree]) -> f64 {
    let mut by_word: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut overall: HashMap<&str, usize> = HashMap::new();
    for n in train.iter().flat_map(|t| t.nodes()) {
        if let (Some(w), Some(l)) = (n.word.as_deref(), n.label.as_deref()) {
            *by_word.entry(w).or_default().entry(l).or_default() += 1;
            *overall.entry(l).or_default() += 1;
        }
    }
    let best = |m: &HashMap<&str, usize>| {
        m.iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(l, _)| l.to_string())
    };
    let fallback = best(&overall).unwrap_or_default();
    let (mut right, mut total) = (0usize, 0usize);
    for n in test.iter().flat_map(|t| t.nodes()) {
        if let Some(l) = n.label.as_deref() {
            let guess = n
                .word
                .as_deref()
                .and_then(|w| by_word.get(w))
                .and_then(best)
                .unwrap_or_else(|| fallback.clone());
            right += usize::from(guess == l);
            total += 1;
        }
    }
    right as f64 / total.max(1) as f64
}
