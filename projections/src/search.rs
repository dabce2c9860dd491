//! Full-text search of messages (issue 15, item 5).
//!
//! Chinese has no spaces, so the index does not rely on a database's word breaking:
//! [`terms`] turns a text into the tokens both backends index the same way — ASCII words
//! lowercased, and every run of other letters (Chinese, Japanese, accented Latin…) as its
//! overlapping pairs of characters followed by its single characters. A query is
//! tokenized alike ([`Query::parse`]): a run becomes the phrase of its pairs (adjacent, in
//! order) or, for one character, that character; an ASCII word matches as a prefix; all
//! pieces must match. SQLite indexes the terms in an FTS5 table that keeps nothing else
//! (rowid = the message's log position, which is also its `messages` row's rowid),
//! Postgres in a GIN index over `to_tsvector('simple', terms)`; both tokenizers keep
//! these tokens as they are.
//!
//! The index is its own projection, [`SearchProjection`], applied *behind* the runner
//! (`runtime::Projector`'s trailing runner): a batch of many messages at a time, in a
//! transaction of its own, so indexing (and the index's merges) never holds up the
//! inbox's transactions, which hand deliveries on. It reads the `messages` rows the
//! inbox wrote (an edit or a revocation finds its message's position there), which the
//! trailing runner guarantees by never passing the runner. A search first waits for the
//! index to reach the log's head as it was when the search came in.

use crate::projection::{Applied, Projection};
use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use serde_json::Value;
use sqlx::AnyConnection;
use uuid::Uuid;

/// The characters of a message that are indexed (the rest of a long text is not found).
pub const INDEXED_CHARS: usize = 2_000;
/// The longest query (characters).
pub const MAX_QUERY_CHARS: usize = 64;

/// A text cut into ASCII words and runs of other letters and digits.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut current: Option<Piece> = None;
    for c in text.chars() {
        let next = if c.is_ascii_alphanumeric() {
            Some(true)
        } else if c.is_alphanumeric() {
            Some(false)
        } else {
            None
        };
        match (next, current.as_mut()) {
            (Some(ascii), Some(piece)) if piece.ascii == ascii => piece.chars.extend(c.to_lowercase()),
            (Some(ascii), _) => {
                out.extend(current.take());
                current = Some(Piece { ascii, chars: c.to_lowercase().collect() });
            }
            (None, _) => out.extend(current.take()),
        }
    }
    out.extend(current);
    out
}

#[derive(Debug)]
struct Piece {
    ascii: bool,
    chars: Vec<char>,
}

impl Piece {
    fn pairs(&self) -> impl Iterator<Item = String> + '_ {
        self.chars.windows(2).map(|w| w.iter().collect())
    }
}

/// The indexed form of a message's text (its first [`INDEXED_CHARS`] characters),
/// written into one string (a rebuild makes it for every text message).
pub fn terms(text: &str) -> String {
    let end = text.char_indices().nth(INDEXED_CHARS).map_or(text.len(), |(at, _)| at);
    let mut out = String::with_capacity(end * 3);
    let mut token = |chars: &[char]| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(chars);
    };
    for piece in pieces(&text[..end]) {
        if piece.ascii {
            token(&piece.chars);
        } else {
            piece.chars.windows(2).for_each(&mut token);
            piece.chars.chunks(1).for_each(&mut token);
        }
    }
    out
}

/// A search: every piece must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Phrases of adjacent tokens, and whether the last token is a prefix.
    phrases: Vec<(Vec<String>, bool)>,
    /// The pieces as typed (lowercased ASCII), for the snippet.
    needles: Vec<String>,
}

impl Query {
    /// `None`: nothing searchable in it (only spaces or punctuation).
    pub fn parse(text: &str) -> Option<Self> {
        let mut phrases = Vec::new();
        let mut needles = Vec::new();
        for piece in pieces(text) {
            needles.push(piece.chars.iter().collect::<String>());
            if piece.ascii {
                phrases.push((vec![piece.chars.iter().collect()], true));
            } else if piece.chars.len() == 1 {
                phrases.push((vec![piece.chars[0].to_string()], false));
            } else {
                phrases.push((piece.pairs().collect(), false));
            }
        }
        (!phrases.is_empty()).then_some(Self { phrases, needles })
    }

    /// The FTS5 `MATCH` expression: `"末爬 爬山" AND "hel"*`.
    fn fts5(&self) -> String {
        let phrase = |(tokens, prefix): &(Vec<String>, bool)| format!("\"{}\"{}", tokens.join(" "), if *prefix { "*" } else { "" });
        self.phrases.iter().map(phrase).collect::<Vec<_>>().join(" AND ")
    }

    /// The Postgres `to_tsquery('simple', …)` text: `末爬 <-> 爬山 & hel:*`.
    fn tsquery(&self) -> String {
        let phrase = |(tokens, prefix): &(Vec<String>, bool)| {
            let mut joined = tokens.join(" <-> ");
            if *prefix {
                joined.push_str(":*");
            }
            format!("({joined})")
        };
        self.phrases.iter().map(phrase).collect::<Vec<_>>().join(" & ")
    }

    /// Where in `text` the query matches (the first piece found), cut to a short snippet:
    /// the text around it and the match's character range in the snippet.
    pub fn snippet(&self, text: &str) -> (String, Option<(usize, usize)>) {
        const AROUND: usize = 20;
        let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        let original: Vec<char> = text.chars().collect();
        // Lowercasing may change the length of a character (rare): then no highlight.
        let found = (lower.len() == original.len())
            .then(|| {
                self.needles.iter().find_map(|needle| {
                    let needle: Vec<char> = needle.chars().collect();
                    lower.windows(needle.len().max(1)).position(|w| w == needle.as_slice()).map(|at| (at, needle.len()))
                })
            })
            .flatten();
        let Some((at, len)) = found else {
            let cut: String = original.iter().take(AROUND * 2).collect();
            return (cut, None);
        };
        let start = at.saturating_sub(AROUND);
        let end = (at + len + AROUND).min(original.len());
        let mut snippet = String::new();
        let mut offset = 0;
        if start > 0 {
            snippet.push('…');
            offset = 1;
        }
        snippet.extend(&original[start..end]);
        if end < original.len() {
            snippet.push('…');
        }
        (snippet, Some((at - start + offset, len)))
    }
}

/// The search index as a projection: text messages indexed, edits indexed again,
/// revoked messages taken out.
pub struct SearchProjection;

const HANDLES: &[&str] = &["MessageSent", "MessageEdited", "MessageRevoked"];

#[async_trait]
impl Projection for SearchProjection {
    fn name(&self) -> &'static str {
        "search"
    }

    fn handles(&self, event_type: &str) -> bool {
        HANDLES.contains(&event_type)
    }

    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError> {
        // New messages go in together; an edit or a revocation first writes those before it.
        let mut new: Vec<(Uuid, i64, &str)> = Vec::with_capacity(events.len());
        for a in events {
            match a.event {
                Event::MessageSent(e) if e.kind == "text" => new.push((e.message_id, a.position, &e.data)),
                Event::MessageEdited(e) => {
                    index_all(conn, &new).await?;
                    new.clear();
                    reindex(conn, e.message_id, &e.data).await?;
                }
                Event::MessageRevoked(e) => {
                    index_all(conn, &new).await?;
                    new.clear();
                    unindex(conn, &e.message_id.to_string()).await?;
                }
                _ => {}
            }
        }
        index_all(conn, &new).await
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        if conn.backend_name() != "SQLite" {
            sqlx::query("DELETE FROM message_search").execute(&mut *conn).await?;
            return Ok(());
        }
        // A contentless index empties at once this way (a DELETE goes row by row).
        sqlx::query("INSERT INTO message_search (message_search) VALUES ('delete-all')").execute(&mut *conn).await?;
        // Loading, FTS5 writes a segment per statement and by default merges every four
        // of a level as they come (each row's terms rewritten again and again); the
        // segments wait instead (at most `crisismerge`, 16, per level) and are merged
        // once, by `rebuilt`. Left at 0 by a rebuild that failed, the index still works
        // (its queries read more segments) until the next rebuild.
        sqlx::query("INSERT INTO message_search (message_search, rank) VALUES ('automerge', 0)").execute(&mut *conn).await?;
        Ok(())
    }

    async fn rebuilt(&self, conn: &mut AnyConnection) -> Result<(), ReadError> {
        if conn.backend_name() == "SQLite" {
            // Merged into one segment, and merging as it goes again (FTS5's default).
            sqlx::query("INSERT INTO message_search (message_search) VALUES ('optimize')").execute(&mut *conn).await?;
            sqlx::query("INSERT INTO message_search (message_search, rank) VALUES ('automerge', 4)").execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Indexes new text messages: (id, log position, text). Each chunk's terms (and on
/// Postgres ids) are made while the statement before it runs (made up front, a range's
/// 20,000 ids took ~2.5 ms of the writer's task while the connection waited). SQLite's
/// index keeps no id: a found row's rowid is its `messages` row's (sqlite/read/0015).
pub(crate) async fn index_all(conn: &mut AnyConnection, messages: &[(Uuid, i64, &str)]) -> Result<(), ReadError> {
    let sqlite = conn.backend_name() == "SQLite";
    let marks = crate::db::Placeholders::of(conn);
    let statement = |size: usize| {
        if sqlite {
            // Plain INSERT: REPLACE made FTS5 look up and delete each rowid first (7 % of a
            // rebuild's profile); the checkpoint moves with the rows, so none comes twice.
            format!("INSERT INTO message_search (rowid, terms) VALUES {}", marks.values(size, 2))
        } else {
            let values = marks.values(size, 3);
            format!("INSERT INTO message_search (message_id, position, terms) VALUES {values} ON CONFLICT (message_id) DO NOTHING")
        }
    };
    let queries = messages.chunks(crate::db::EXACT_CHUNK).flat_map(|chunk| {
        // A text with nothing to index (punctuation, emoji) has no row.
        let rows: Vec<(Option<String>, i64, String)> = chunk
            .iter()
            .filter_map(|(id, position, text)| {
                let terms = terms(text);
                (!terms.is_empty()).then(|| ((!sqlite).then(|| id.to_string()), *position, terms))
            })
            .collect();
        let mut rows = rows.into_iter();
        let queries: Vec<_> = crate::db::exact_sizes(rows.len())
            .map(|size| {
                let query = crate::db::query_for(
                    crate::db::statement_text("message_search", marks, size, || statement(size)),
                    size * if sqlite { 2 } else { 3 },
                );
                rows.by_ref().take(size).fold(query, |query, (id, position, terms)| match id {
                    Some(id) => query.bind(id).bind(position).bind(terms),
                    None => query.bind(position).bind(terms),
                })
            })
            .collect();
        queries
    });
    crate::db::run_all(conn, queries).await
}

/// Indexes an edited message's new text (unless it is gone or revoked).
async fn reindex(conn: &mut AnyConnection, message_id: Uuid, text: &str) -> Result<(), ReadError> {
    let id = message_id.to_string();
    unindex(conn, &id).await?;
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM messages WHERE id = $1 AND isremove = 0").bind(&id).fetch_optional(&mut *conn).await?;
    match position {
        Some(position) => index_all(conn, &[(message_id, position, text)]).await,
        None => Ok(()),
    }
}

/// Takes a message out of the index (revoked, or before it is indexed again).
async fn unindex(conn: &mut AnyConnection, message_id: &str) -> Result<(), ReadError> {
    let sql = if conn.backend_name() == "SQLite" {
        "DELETE FROM message_search WHERE rowid = (SELECT position FROM messages WHERE id = $1)"
    } else {
        "DELETE FROM message_search WHERE message_id = $1"
    };
    sqlx::query(sql).bind(message_id).execute(&mut *conn).await?;
    Ok(())
}

/// Where a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every one-to-one message I sent or received.
    MySingleChats { me: i64 },
    /// My one-to-one chat with `peer`.
    SingleChat { me: i64, peer: i64 },
    /// A group's messages from `since` (ms) on.
    Group { me: i64, group: i64, since: i64 },
}

/// One message found: the message as history shows it, and its snippet.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub message: Value,
    pub snippet: String,
    pub highlight: Option<(usize, usize)>,
}

/// Searches messages.
#[derive(Clone)]
pub struct Search {
    db: ReadDb,
}

impl Search {
    pub fn new(db: ReadDb) -> Self {
        Self { db }
    }

    /// The messages in `scope` the query matches (not revoked, not hidden from me), newest
    /// first.
    pub async fn find(&self, scope: Scope, query: &Query, page: i64, limit: i64) -> Result<Vec<Found>, ReadError> {
        let sqlite = self.db.backend() == crate::db::Backend::Sqlite;
        let (matched, join) = if sqlite {
            ("message_search MATCH $1", "message_search JOIN messages m ON m.position = message_search.rowid")
        } else {
            ("to_tsvector('simple', s.terms) @@ to_tsquery('simple', $1)", "message_search s JOIN messages m ON m.id = s.message_id")
        };
        // Every parameter appears in the statement (Postgres must know each one's type).
        let (me, within, a, b) = match scope {
            Scope::MySingleChats { me } => (me, "m.chat_type = 'single' AND (m.from_id = $2 OR m.to_id = $2) AND $3 = $4", 0, 0),
            Scope::SingleChat { me, peer } => (
                me,
                "m.chat_type = 'single' AND ((m.from_id = $2 AND m.to_id = $3) OR (m.from_id = $3 AND m.to_id = $2)) AND $4 = $4",
                peer,
                0,
            ),
            Scope::Group { me, group, since } => (me, "m.chat_type = 'group' AND m.to_id = $3 AND m.create_time >= $4", group, since),
        };
        let sql = format!(
            "SELECT m.body FROM {join} WHERE {matched} AND {within} AND m.isremove = 0 \
             AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id) \
             ORDER BY m.position DESC LIMIT $5 OFFSET $6"
        );
        let text = if sqlite { query.fts5() } else { query.tsquery() };
        let bodies: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(text)
            .bind(me)
            .bind(a)
            .bind(b)
            .bind(limit)
            .bind(crate::db::offset(page, limit))
            .fetch_all(self.db.pool())
            .await?;
        bodies
            .iter()
            .map(|body| {
                let message: Value = serde_json::from_str(body)?;
                let (snippet, highlight) = query.snippet(message["data"].as_str().unwrap_or_default());
                Ok(Found { message, snippet, highlight })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_indexed_as_pairs_then_characters_and_ascii_as_words() {
        assert_eq!(terms("周末去爬山, OK?"), "周末 末去 去爬 爬山 周 末 去 爬 山 ok");
        assert_eq!(terms("Hello 世界 42"), "hello 世界 世 界 42");
        assert_eq!(terms("!!! 🙂"), "");
        // Only the first INDEXED_CHARS characters (bytes would cut a character in two).
        assert_eq!(terms(&"ab ".repeat(1_000)).split(' ').count(), 667);
        assert_eq!(terms(&"山".repeat(2_500)).split(' ').count(), 1_999 + 2_000);
    }

    #[test]
    fn a_query_is_phrases_of_pairs_and_prefixed_words() {
        let q = Query::parse("爬山 Hel").unwrap_or_else(|| panic!("a query"));
        assert_eq!(q.fts5(), "\"爬山\" AND \"hel\"*");
        assert_eq!(q.tsquery(), "(爬山) & (hel:*)");
        let q = Query::parse("去爬山").unwrap_or_else(|| panic!("a query"));
        assert_eq!(q.fts5(), "\"去爬 爬山\"");
        assert_eq!(q.tsquery(), "(去爬 <-> 爬山)");
        assert_eq!(Query::parse("山").map(|q| q.fts5()), Some("\"山\"".to_owned()));
        assert!(Query::parse(" ,. 🙂 ").is_none());
    }

    #[test]
    fn the_snippet_is_cut_around_the_match() {
        let q = Query::parse("爬山").unwrap_or_else(|| panic!("a query"));
        assert_eq!(q.snippet("周末去爬山"), ("周末去爬山".to_owned(), Some((3, 2))));
        let long = format!("{}爬山{}", "啊".repeat(30), "哦".repeat(30));
        let (snippet, highlight) = q.snippet(&long);
        assert_eq!(highlight, Some((21, 2)));
        assert!(snippet.starts_with('…') && snippet.ends_with('…'), "{snippet}");
        assert_eq!(snippet.chars().skip(21).take(2).collect::<String>(), "爬山");
        let q = Query::parse("HELLO").unwrap_or_else(|| panic!("a query"));
        assert_eq!(q.snippet("say Hello"), ("say Hello".to_owned(), Some((4, 5))));
    }
}
