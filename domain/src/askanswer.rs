//! Auto-reply question/answer pairs, one stream per owner (`askanswer-<user>`), and the
//! keyword score that picks the best answer for an incoming message.

use crate::event::Event;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The most pairs one user keeps.
pub const MAX_PAIRS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskAnswerSaved {
    pub user_id: UserId,
    pub id: i64,
    pub ask: String,
    pub answer: String,
    /// True for a new pair, false for an edit.
    pub created: bool,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskAnswerDeleted {
    pub user_id: UserId,
    pub id: i64,
    pub at: i64,
}

/// A question/answer pair parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub ask: String,
    pub answer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AskAnswerError {
    #[error("ask must be 1 to 200 characters")]
    Ask,
    #[error("answer must be 1 to 2000 characters")]
    Answer,
    #[error("no such pair")]
    NotFound,
    #[error("too many pairs")]
    TooMany,
}

impl Pair {
    pub fn parse(ask: &str, answer: &str) -> Result<Self, AskAnswerError> {
        let (ask, answer) = (ask.trim(), answer.trim());
        if ask.is_empty() || ask.chars().count() > 200 {
            return Err(AskAnswerError::Ask);
        }
        if answer.is_empty() || answer.chars().count() > 2000 {
            return Err(AskAnswerError::Answer);
        }
        Ok(Self { ask: ask.to_owned(), answer: answer.to_owned() })
    }
}

/// The owner's pairs by id.
pub type State = BTreeMap<i64, Pair>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create { id: i64, pair: Pair, at: i64 },
    Update { id: i64, pair: Pair, at: i64 },
    Delete { id: i64, at: i64 },
}

pub fn decide(state: &State, owner: UserId, command: Command) -> Result<Vec<Event>, AskAnswerError> {
    match command {
        Command::Create { id, pair, at } => {
            if state.len() >= MAX_PAIRS {
                return Err(AskAnswerError::TooMany);
            }
            Ok(vec![Event::AskAnswerSaved(AskAnswerSaved { user_id: owner, id, ask: pair.ask, answer: pair.answer, created: true, at })])
        }
        Command::Update { id, pair, at } => {
            if !state.contains_key(&id) {
                return Err(AskAnswerError::NotFound);
            }
            Ok(vec![Event::AskAnswerSaved(AskAnswerSaved { user_id: owner, id, ask: pair.ask, answer: pair.answer, created: false, at })])
        }
        Command::Delete { id, at } => {
            if !state.contains_key(&id) {
                return Err(AskAnswerError::NotFound);
            }
            Ok(vec![Event::AskAnswerDeleted(AskAnswerDeleted { user_id: owner, id, at })])
        }
    }
}

pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::AskAnswerSaved(e) => {
            state.insert(e.id, Pair { ask: e.ask.clone(), answer: e.answer.clone() });
        }
        Event::AskAnswerDeleted(e) => {
            state.remove(&e.id);
        }
        _ => {}
    }
    state
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3040..=0x30FF | 0xAC00..=0xD7AF)
}

/// Keywords of a text: lowercase runs of letters/digits, and each CJK character and
/// adjacent CJK pair (Chinese has no spaces between words).
pub fn keywords(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut word = String::new();
    let mut prev_cjk: Option<char> = None;
    for c in text.to_lowercase().chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.insert(std::mem::take(&mut word));
            }
            out.insert(c.to_string());
            if let Some(p) = prev_cjk {
                out.insert(format!("{p}{c}"));
            }
            prev_cjk = Some(c);
        } else {
            prev_cjk = None;
            if c.is_alphanumeric() {
                word.push(c);
            } else if !word.is_empty() {
                out.insert(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.insert(word);
    }
    out
}

/// The most characters of a query the matcher reads: the longest question is 200, and a
/// long message's first 1,000 characters say what it is about. The search route refuses
/// longer queries; an auto-reply reads a long message's beginning.
pub const MAX_QUERY_CHARS: usize = 1000;

/// How well `query` matches a question: the share of the question's keywords found in
/// the query (0.0 – 1.0).
pub fn score(ask: &str, query: &str) -> f64 {
    score_keywords(ask, &keywords(query))
}

fn score_keywords(ask: &str, query: &HashSet<String>) -> f64 {
    let ask = keywords(ask);
    if ask.is_empty() {
        return 0.0;
    }
    ask.iter().filter(|k| query.contains(*k)).count() as f64 / ask.len() as f64
}

/// The best-matching pair for `query`, if any keyword matches at all. Ties go to the
/// lower id (the older pair). The query is cut to [`MAX_QUERY_CHARS`] and tokenized
/// once; each question is at most 200 characters, so the work is bounded by the pairs.
pub fn best_match<'a>(pairs: impl IntoIterator<Item = (i64, &'a Pair)>, query: &str) -> Option<(i64, &'a Pair)> {
    let cut = query.char_indices().nth(MAX_QUERY_CHARS).map_or(query, |(at, _)| &query[..at]);
    let query = keywords(cut);
    let mut best: Option<(f64, i64, &Pair)> = None;
    for (id, pair) in pairs {
        let s = score_keywords(&pair.ask, &query);
        if s > 0.0 && best.is_none_or(|(b, bid, _)| s > b || (s == b && id < bid)) {
            best = Some((s, id, pair));
        }
    }
    best.map(|(_, id, pair)| (id, pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ask: &str) -> Pair {
        Pair { ask: ask.into(), answer: format!("answer to {ask}") }
    }

    #[test]
    fn keywords_split_words_and_cjk() {
        let k = keywords("Hello, 价格多少? price!");
        for w in ["hello", "price", "价", "格", "价格", "多少"] {
            assert!(k.contains(w), "{w} in {k:?}");
        }
    }

    #[test]
    fn best_match_prefers_the_highest_score() {
        let pairs = [(1, pair("发货时间")), (2, pair("价格多少")), (3, pair("refund policy"))];
        let refs = pairs.iter().map(|(i, p)| (*i, p));
        assert_eq!(best_match(refs.clone(), "请问价格是多少").map(|(i, _)| i), Some(2));
        assert_eq!(best_match(refs.clone(), "what is your REFUND policy?").map(|(i, _)| i), Some(3));
        assert_eq!(best_match(refs.clone(), "xyz"), None);
        // Only the query's first MAX_QUERY_CHARS count.
        let late = format!("{}价格多少", "z".repeat(MAX_QUERY_CHARS));
        assert_eq!(best_match(refs.clone(), &late), None);
        let early = format!("价格多少{}", " z".repeat(MAX_QUERY_CHARS));
        assert_eq!(best_match(refs, &early).map(|(i, _)| i), Some(2));
    }

    #[test]
    fn decide_rules() {
        let owner = UserId(1);
        let created = decide(&State::new(), owner, Command::Create { id: 5, pair: pair("a"), at: 1 });
        let state = created.iter().flatten().fold(State::new(), evolve);
        assert_eq!(state.len(), 1);
        assert_eq!(decide(&state, owner, Command::Update { id: 6, pair: pair("b"), at: 2 }), Err(AskAnswerError::NotFound));
        assert_eq!(decide(&state, owner, Command::Delete { id: 6, at: 2 }), Err(AskAnswerError::NotFound));
        let deleted = decide(&state, owner, Command::Delete { id: 5, at: 3 }).unwrap_or_default();
        assert!(deleted.iter().fold(state, evolve).is_empty());
        assert_eq!(Pair::parse(" ", "x"), Err(AskAnswerError::Ask));
        assert_eq!(Pair::parse("x", ""), Err(AskAnswerError::Answer));
    }
}
