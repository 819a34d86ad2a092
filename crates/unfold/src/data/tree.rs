//! Trees as data, for the chapter's recursive networks: a [`Tree`] of nodes, each with an
//! optional word (the token a leaf of a constituency tree, or every node of a dependency tree,
//! carries) and an optional label, stored children before parents so that one pass in order
//! visits every child before its parent.
//!
//! Readers: bracketed trees ([`parse_bracketed`]: s-expressions, Penn Treebank and the
//! Stanford Sentiment Treebank's `(3 (2 the) (4 (3 good) (2 film)))`) and dependency trees in
//! CoNLL-U ([`parse_conllu`]: a word's children are its dependents). Builders over a plain
//! sequence when no parse is given: [`Tree::balanced`], [`Tree::left_chain`],
//! [`Tree::right_chain`]. Malformed input is an [`Error::InvalidData`] naming the line.

use crate::error::{Error, Result};

/// One node: its children (indices of earlier nodes, in order), its word and its label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeNode {
    /// Indices of the children in [`Tree::nodes`], in their order (all smaller than this
    /// node's own index).
    pub children: Vec<usize>,
    /// The token at this node, if it has one.
    pub word: Option<String>,
    /// The node's label, if it has one.
    pub label: Option<String>,
}

/// A rooted ordered tree whose nodes are stored children first: every child has a smaller
/// index than its parent, and the root is the last node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<TreeNode>,
}

impl Tree {
    /// A tree of `nodes` stored children first (root last). Checks that it is one tree: every
    /// child index is smaller than its parent's, and every node but the root has exactly one
    /// parent.
    pub fn new(nodes: Vec<TreeNode>) -> Result<Self> {
        if nodes.is_empty() {
            return Err(Error::InvalidData("a tree needs at least one node".into()));
        }
        let mut parents = vec![0usize; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for &c in &n.children {
                if c >= i {
                    return Err(Error::InvalidData(format!(
                        "node {i} has child {c}: children must come before their parent"
                    )));
                }
                parents[c] += 1;
            }
        }
        let last = nodes.len() - 1;
        if let Some(i) = (0..last).find(|&i| parents[i] != 1) {
            return Err(Error::InvalidData(format!(
                "node {i} has {} parents; every node but the root (the last) needs one",
                parents[i]
            )));
        }
        if parents[last] != 0 {
            return Err(Error::InvalidData(
                "the root (last node) has a parent".into(),
            ));
        }
        Ok(Tree { nodes })
    }

    /// The nodes, children first, root last.
    pub fn nodes(&self) -> &[TreeNode] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never empty: a tree has a root.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Index of the root (the last node).
    pub fn root(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The height of every node: 0 for a leaf, 1 + the largest height of its children.
    pub fn heights(&self) -> Vec<usize> {
        let mut h = vec![0usize; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            h[i] = n.children.iter().map(|&c| h[c] + 1).max().unwrap_or(0);
        }
        h
    }

    /// The height of the root: the number of composition steps from the deepest leaf.
    pub fn depth(&self) -> usize {
        self.heights()[self.root()]
    }

    /// The largest number of children of any node.
    pub fn max_arity(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.children.len())
            .max()
            .unwrap_or(0)
    }

    /// The words of the nodes that have one, in the order a reader meets them (left to right
    /// for a constituency tree; for a dependency tree, each word after its dependents).
    pub fn words(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(self.root(), &mut |n| {
            if let Some(w) = &n.word {
                out.push(w.as_str());
            }
        });
        out
    }

    fn visit<'a>(&'a self, i: usize, f: &mut impl FnMut(&'a TreeNode)) {
        for &c in &self.nodes[i].children {
            self.visit(c, f);
        }
        f(&self.nodes[i]);
    }

    /// A balanced binary tree over `words` (leaves in order, no labels): depth
    /// `ceil(log2 n)`.
    pub fn balanced<S: AsRef<str>>(words: &[S]) -> Result<Self> {
        let mut nodes = leaves(words)?;
        let mut level: Vec<usize> = (0..nodes.len()).collect();
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            for pair in level.chunks(2) {
                if pair.len() == 2 {
                    nodes.push(TreeNode {
                        children: pair.to_vec(),
                        ..TreeNode::default()
                    });
                    next.push(nodes.len() - 1);
                } else {
                    next.push(pair[0]);
                }
            }
            level = next;
        }
        debug_assert_eq!(level[0], nodes.len() - 1);
        Tree::new(nodes)
    }

    /// A left-branching binary chain over `words`: `(((w1 w2) w3) w4)`, depth `n - 1`, the
    /// shape of a left-to-right recurrent network.
    pub fn left_chain<S: AsRef<str>>(words: &[S]) -> Result<Self> {
        let mut nodes = leaves(words)?;
        let mut acc = 0;
        for i in 1..words.len() {
            nodes.push(TreeNode {
                children: vec![acc, i],
                ..TreeNode::default()
            });
            acc = nodes.len() - 1;
        }
        Tree::new(nodes)
    }

    /// A right-branching binary chain over `words`: `(w1 (w2 (w3 w4)))`.
    pub fn right_chain<S: AsRef<str>>(words: &[S]) -> Result<Self> {
        let mut nodes = leaves(words)?;
        let n = words.len();
        let mut acc = n - 1;
        for i in (0..n - 1).rev() {
            nodes.push(TreeNode {
                children: vec![i, acc],
                ..TreeNode::default()
            });
            acc = nodes.len() - 1;
        }
        Tree::new(nodes)
    }

    /// The tree in bracketed form: `(label child ...)` for an internal node, `(label word)`
    /// or `word` for a leaf; a dependency node with a word and children prints its word first.
    pub fn to_bracketed(&self) -> String {
        let mut s = String::new();
        self.write_node(self.root(), &mut s);
        s
    }

    fn write_node(&self, i: usize, s: &mut String) {
        let n = &self.nodes[i];
        if n.children.is_empty() && n.label.is_none() {
            s.push_str(n.word.as_deref().unwrap_or("_"));
            return;
        }
        s.push('(');
        let mut first = true;
        for part in [n.label.as_deref(), n.word.as_deref()]
            .into_iter()
            .flatten()
        {
            if !first {
                s.push(' ');
            }
            s.push_str(part);
            first = false;
        }
        for &c in &n.children {
            if !first {
                s.push(' ');
            }
            self.write_node(c, s);
            first = false;
        }
        s.push(')');
    }
}

fn leaves<S: AsRef<str>>(words: &[S]) -> Result<Vec<TreeNode>> {
    if words.is_empty() {
        return Err(Error::InvalidData("a tree over no words".into()));
    }
    Ok(words
        .iter()
        .map(|w| TreeNode {
            word: Some(w.as_ref().to_string()),
            ..TreeNode::default()
        })
        .collect())
}

/// How the first atom of a bracketed group is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brackets {
    /// `(label child ...)`: the first atom of a group is the node's label, and a group of one
    /// atom, `(label word)`, is a labelled leaf (Penn Treebank, Stanford Sentiment Treebank).
    Labelled,
    /// Every atom is a leaf word and groups carry no labels: `((the cat) sat)`.
    Unlabelled,
}

/// One token of the bracketed reader, with its line.
enum Tok<'a> {
    Open(usize),
    Close(usize),
    Atom(&'a str, usize),
}

fn tokenize(text: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line_no = ln + 1;
        let mut start = None;
        for (i, c) in line.char_indices() {
            let sep = c == '(' || c == ')' || c.is_whitespace();
            if sep {
                if let Some(s) = start.take() {
                    out.push(Tok::Atom(&line[s..i], line_no));
                }
                match c {
                    '(' => out.push(Tok::Open(line_no)),
                    ')' => out.push(Tok::Close(line_no)),
                    _ => {}
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            out.push(Tok::Atom(&line[s..], line_no));
        }
    }
    out
}

/// An item of a group while it is being read: a finished subtree (its node index) or an atom.
enum Item<'a> {
    Node(usize),
    Atom(&'a str),
}

/// Reads every bracketed tree of `text` (trees may span lines; several may share one). Errors
/// name the line: an unbalanced or stray bracket, an empty group `()`, text outside any tree
/// in [`Brackets::Labelled`] mode, a group with a label and nothing else, or no tree at all.
pub fn parse_bracketed(text: &str, mode: Brackets) -> Result<Vec<Tree>> {
    let toks = tokenize(text);
    let mut trees = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match toks[i] {
            Tok::Open(_) => {
                let mut nodes = Vec::new();
                i = read_group(&toks, i, mode, &mut nodes)?;
                trees.push(Tree::new(nodes)?);
            }
            Tok::Close(l) => {
                return Err(Error::InvalidData(format!(
                    "line {l}: ')' closes no open bracket"
                )))
            }
            Tok::Atom(a, l) => match mode {
                Brackets::Unlabelled => {
                    trees.push(Tree::new(vec![TreeNode {
                        word: Some(a.to_string()),
                        ..TreeNode::default()
                    }])?);
                    i += 1;
                }
                Brackets::Labelled => {
                    return Err(Error::InvalidData(format!(
                        "line {l}: '{a}' is outside any bracketed tree"
                    )))
                }
            },
        }
    }
    if trees.is_empty() {
        return Err(Error::InvalidData("no bracketed tree in the input".into()));
    }
    Ok(trees)
}

/// Reads the group opened at `toks[start]` into `nodes` (children first) and returns the index
/// after its closing bracket. Iterative, so a deeply nested input cannot overflow the stack.
fn read_group(
    toks: &[Tok<'_>],
    start: usize,
    mode: Brackets,
    nodes: &mut Vec<TreeNode>,
) -> Result<usize> {
    // Open groups: (line opened, items so far).
    let mut stack: Vec<(usize, Vec<Item<'_>>)> = Vec::new();
    let mut i = start;
    loop {
        let Some(tok) = toks.get(i) else {
            let (l, _) = stack.last().expect("a group is open");
            return Err(Error::InvalidData(format!(
                "line {l}: '(' is never closed (the input ends first)"
            )));
        };
        i += 1;
        match *tok {
            Tok::Open(l) => stack.push((l, Vec::new())),
            Tok::Atom(a, _) => stack
                .last_mut()
                .expect("a group is open")
                .1
                .push(Item::Atom(a)),
            Tok::Close(l) => {
                let (opened, items) = stack.pop().expect("a group is open");
                let node = group_node(items, mode, opened, l, nodes)?;
                nodes.push(node);
                let idx = nodes.len() - 1;
                match stack.last_mut() {
                    Some(parent) => parent.1.push(Item::Node(idx)),
                    None => return Ok(i),
                }
            }
        }
    }
}

/// The node a closed group makes (its atom children are pushed as leaves first).
fn group_node(
    items: Vec<Item<'_>>,
    mode: Brackets,
    opened: usize,
    closed: usize,
    nodes: &mut Vec<TreeNode>,
) -> Result<TreeNode> {
    if items.is_empty() {
        return Err(Error::InvalidData(format!(
            "line {closed}: empty group '()'"
        )));
    }
    let mut items = items.into_iter().peekable();
    let label = match (mode, items.peek()) {
        (Brackets::Labelled, Some(Item::Atom(a))) => {
            let a = a.to_string();
            items.next();
            Some(a)
        }
        _ => None,
    };
    let rest: Vec<Item<'_>> = items.collect();
    if mode == Brackets::Labelled {
        if rest.is_empty() {
            return Err(Error::InvalidData(format!(
                "line {opened}: the group '({})' has a label and no word or subtree",
                label.unwrap_or_default()
            )));
        }
        if let [Item::Atom(w)] = rest[..] {
            return Ok(TreeNode {
                children: Vec::new(),
                word: Some(w.to_string()),
                label,
            });
        }
    }
    if let [Item::Atom(w)] = rest[..] {
        // An unlabelled `(word)`: a leaf.
        return Ok(TreeNode {
            children: Vec::new(),
            word: Some(w.to_string()),
            label,
        });
    }
    let mut children = Vec::with_capacity(rest.len());
    for it in rest {
        match it {
            Item::Node(k) => children.push(k),
            Item::Atom(w) => {
                nodes.push(TreeNode {
                    word: Some(w.to_string()),
                    ..TreeNode::default()
                });
                children.push(nodes.len() - 1);
            }
        }
    }
    Ok(TreeNode {
        children,
        word: None,
        label,
    })
}

/// Which CoNLL-U column becomes a node's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConlluLabel {
    /// The universal part of speech (column 4).
    Upos,
    /// The language-specific part of speech (column 5).
    Xpos,
    /// The dependency relation to the head (column 8).
    Deprel,
}

/// Reads the dependency trees of a CoNLL-U text: one tree per sentence (sentences separated by
/// blank lines, `#` comments skipped, multiword-token ranges `1-2` and empty nodes `1.1`
/// skipped). A word's children are its dependents in word order, its word is the form (column
/// 2) and its label the chosen column. Errors name the line: fewer than 10 columns, a bad id or
/// head, no root or two roots, a head pointing outside the sentence, a cycle.
pub fn parse_conllu(text: &str, label: ConlluLabel) -> Result<Vec<Tree>> {
    let mut trees = Vec::new();
    // Current sentence: (line, form, label, head) per word, and the sentence's first line.
    let mut words: Vec<(usize, String, String, usize)> = Vec::new();
    let mut first_line = 0;
    for (ln, line) in text.lines().enumerate() {
        let line_no = ln + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !words.is_empty() {
                trees.push(dependency_tree(std::mem::take(&mut words), first_line)?);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 10 {
            return Err(Error::InvalidData(format!(
                "line {line_no}: {} tab-separated columns, CoNLL-U has 10",
                cols.len()
            )));
        }
        if cols[0].contains('-') || cols[0].contains('.') {
            continue;
        }
        let id: usize = cols[0].parse().map_err(|_| {
            Error::InvalidData(format!(
                "line {line_no}: word id '{}' is not a number",
                cols[0]
            ))
        })?;
        if id != words.len() + 1 {
            return Err(Error::InvalidData(format!(
                "line {line_no}: word id {id} where {} was expected",
                words.len() + 1
            )));
        }
        if words.is_empty() {
            first_line = line_no;
        }
        let head: usize = cols[6].parse().map_err(|_| {
            Error::InvalidData(format!(
                "line {line_no}: head '{}' is not a word id (a missing head?)",
                cols[6]
            ))
        })?;
        let lab = match label {
            ConlluLabel::Upos => cols[3],
            ConlluLabel::Xpos => cols[4],
            ConlluLabel::Deprel => cols[7],
        };
        words.push((line_no, cols[1].to_string(), lab.to_string(), head));
    }
    if !words.is_empty() {
        trees.push(dependency_tree(words, first_line)?);
    }
    if trees.is_empty() {
        return Err(Error::InvalidData(
            "no sentence in the CoNLL-U input".into(),
        ));
    }
    Ok(trees)
}

/// The dependency tree of one sentence's words `(line, form, label, head)`.
fn dependency_tree(words: Vec<(usize, String, String, usize)>, first_line: usize) -> Result<Tree> {
    let n = words.len();
    let mut root = None;
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, &(line, _, _, head)) in words.iter().enumerate() {
        if head == 0 {
            if let Some(r) = root {
                return Err(Error::InvalidData(format!(
                    "line {line}: a second root in the sentence of line {first_line} (word {} \
                     is the first)",
                    r + 1
                )));
            }
            root = Some(i);
        } else if head > n {
            return Err(Error::InvalidData(format!(
                "line {line}: head {head} is outside the sentence's {n} words"
            )));
        } else if head == i + 1 {
            return Err(Error::InvalidData(format!(
                "line {line}: word {head} is its own head"
            )));
        } else {
            deps[head - 1].push(i);
        }
    }
    let root = root.ok_or_else(|| {
        Error::InvalidData(format!(
            "line {first_line}: the sentence has no root (no word with head 0)"
        ))
    })?;
    // Post-order from the root, iteratively; words never reached lie on a cycle.
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![(root, false)];
    while let Some((w, expanded)) = stack.pop() {
        if expanded {
            order.push(w);
        } else {
            stack.push((w, true));
            for &d in deps[w].iter().rev() {
                stack.push((d, false));
            }
        }
    }
    if order.len() != n {
        let mut seen = vec![false; n];
        order.iter().for_each(|&w| seen[w] = true);
        let w = (0..n).find(|&w| !seen[w]).expect("a word is unreached");
        return Err(Error::InvalidData(format!(
            "line {}: word {} is on a cycle of heads (not connected to the root)",
            words[w].0,
            w + 1
        )));
    }
    let mut pos = vec![0usize; n];
    for (k, &w) in order.iter().enumerate() {
        pos[w] = k;
    }
    let mut words: Vec<Option<(usize, String, String, usize)>> =
        words.into_iter().map(Some).collect();
    let nodes = order
        .iter()
        .map(|&w| {
            let (_, form, lab, _) = words[w].take().expect("each word once");
            TreeNode {
                children: deps[w].iter().map(|&d| pos[d]).collect(),
                word: Some(form),
                label: Some(lab),
            }
        })
        .collect();
    Tree::new(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sentiment_treebank_line() {
        let t =
            &parse_bracketed("(3 (2 the) (4 (3 good) (2 film)))", Brackets::Labelled).unwrap()[0];
        assert_eq!(t.len(), 5);
        assert_eq!(t.words(), vec!["the", "good", "film"]);
        assert_eq!(t.nodes()[t.root()].label.as_deref(), Some("3"));
        assert_eq!(t.depth(), 2);
        assert_eq!(t.to_bracketed(), "(3 (2 the) (4 (3 good) (2 film)))");
    }

    #[test]
    fn reads_unlabelled_and_multiline_trees() {
        let ts = parse_bracketed("((the cat)\n sat) (a (b c d))", Brackets::Unlabelled).unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].words(), vec!["the", "cat", "sat"]);
        assert_eq!(ts[1].max_arity(), 3);
        assert_eq!(ts[1].to_bracketed(), "(a (b c d))");
    }

    #[test]
    fn bracket_errors_name_the_line() {
        let e = |s: &str| {
            parse_bracketed(s, Brackets::Labelled)
                .unwrap_err()
                .to_string()
        };
        assert!(
            e("(1 (2 a)\n(3 b)").contains("line 1"),
            "{}",
            e("(1 (2 a)\n(3 b)")
        );
        assert!(e("(1 a))").contains("closes no"));
        assert!(e("(1 ())").contains("empty group"));
        assert!(e("\n\nword").contains("line 3"));
        assert!(e("(1)").contains("no word or subtree"));
        assert!(e("   ").contains("no bracketed tree"));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 100_000;
        let s = format!("{}x{}", "(".repeat(depth), ")".repeat(depth));
        let t = &parse_bracketed(&s, Brackets::Unlabelled).unwrap()[0];
        assert_eq!(t.len(), depth);
    }

    #[test]
    fn builds_balanced_and_chain_trees() {
        let w = ["a", "b", "c", "d", "e"];
        let b = Tree::balanced(&w).unwrap();
        assert_eq!(b.depth(), 3);
        assert_eq!(b.words(), w.to_vec());
        assert_eq!(b.to_bracketed(), "(((a b) (c d)) e)");
        let l = Tree::left_chain(&w).unwrap();
        assert_eq!(
            (l.depth(), l.to_bracketed().as_str()),
            (4, "((((a b) c) d) e)")
        );
        let r = Tree::right_chain(&w).unwrap();
        assert_eq!(
            (r.depth(), r.to_bracketed().as_str()),
            (4, "(a (b (c (d e))))")
        );
        assert_eq!(Tree::balanced(&["x"]).unwrap().len(), 1);
        assert!(Tree::balanced::<&str>(&[]).is_err());
    }

    const CONLLU: &str = "# text = a b c\n1\tthe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n\
        2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n3-4\tbarks.\t_\t_\t_\t_\t_\t_\t_\t_\n\
        3\tbarks\tbark\tVERB\tVB\t_\t0\troot\t_\t_\n4\t.\t.\tPUNCT\t.\t_\t3\tp\t_\t_\n\n";

    #[test]
    fn reads_dependency_trees() {
        let ts = parse_conllu(CONLLU, ConlluLabel::Upos).unwrap();
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        assert_eq!(t.len(), 4);
        let root = &t.nodes()[t.root()];
        assert_eq!(
            (root.word.as_deref(), root.label.as_deref()),
            (Some("barks"), Some("VERB"))
        );
        assert_eq!(root.children.len(), 2);
        assert_eq!(
            t.to_bracketed(),
            "(VERB barks (NOUN dog (DET the)) (PUNCT .))"
        );
        let d = parse_conllu(CONLLU, ConlluLabel::Deprel).unwrap();
        assert_eq!(d[0].nodes()[0].label.as_deref(), Some("det"));
    }

    #[test]
    fn conllu_errors_name_the_line() {
        let e = |s: &str| parse_conllu(s, ConlluLabel::Upos).unwrap_err().to_string();
        let cycle = "1\ta\t_\tX\t_\t_\t2\t_\t_\t_\n2\tb\t_\tX\t_\t_\t1\t_\t_\t_\n3\tc\t_\tX\t_\t_\t0\t_\t_\t_\n";
        assert!(e(cycle).contains("cycle"), "{}", e(cycle));
        assert!(e(cycle).contains("line 1"));
        let missing = "1\ta\t_\tX\t_\t_\t_\t_\t_\t_\n";
        assert!(e(missing).contains("line 1") && e(missing).contains("missing head"));
        let two = "1\ta\t_\tX\t_\t_\t0\t_\t_\t_\n2\tb\t_\tX\t_\t_\t0\t_\t_\t_\n";
        assert!(e(two).contains("line 2") && e(two).contains("second root"));
        let none = "1\ta\t_\tX\t_\t_\t2\t_\t_\t_\n2\tb\t_\tX\t_\t_\t2\t_\t_\t_\n";
        assert!(e(none).contains("own head"));
        let far = "1\ta\t_\tX\t_\t_\t9\t_\t_\t_\n";
        assert!(e(far).contains("outside"));
        assert!(e("1\ta\tb\n").contains("columns"));
        assert!(e("# only a comment\n").contains("no sentence"));
        let gap = "1\ta\t_\tX\t_\t_\t0\t_\t_\t_\n3\tb\t_\tX\t_\t_\t1\t_\t_\t_\n";
        assert!(e(gap).contains("line 2"));
    }

    #[test]
    fn new_rejects_malformed_structures() {
        let leaf = || TreeNode::default();
        assert!(Tree::new(vec![]).is_err());
        let shared = vec![
            leaf(),
            TreeNode {
                children: vec![0],
                ..leaf()
            },
            TreeNode {
                children: vec![0, 1],
                ..leaf()
            },
        ];
        assert!(Tree::new(shared).is_err());
        let forward = vec![
            TreeNode {
                children: vec![1],
                ..leaf()
            },
            leaf(),
        ];
        assert!(Tree::new(forward).is_err());
        let forest = vec![leaf(), leaf()];
        assert!(Tree::new(forest).is_err());
    }
}
