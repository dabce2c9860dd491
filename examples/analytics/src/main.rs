//! An analytics consumer of `im.events` (the event records of `docs/events.md`): keeps
//! daily active users (every user who acted that day, `metadata.actor`) and messages per
//! day (`MessageSent`) in a SQLite file, and prints them.
//!
//! ```sh
//! im-analytics consume --brokers 127.0.0.1:9092 --db analytics.db [--topic im.events] [--group im-analytics] [--idle-exit SECS]
//! im-analytics report --db analytics.db
//! ```
//!
//! Each record is applied once: its log `position` is stored in the same transaction as
//! its effect, so a record read again (a restart before the offset was committed, a
//! replay with `im replay`, another consumer group) changes nothing. Records of one
//! stream arrive in order; across partitions the order does not matter for these counts.

use anyhow::{Context, bail};
use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

const USAGE: &str = "usage: im-analytics consume --brokers HOST:PORT --db PATH [--topic im.events] [--group NAME] [--idle-exit SECS]
       im-analytics report --db PATH";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("im-analytics: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs after the command.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(command) = args.first() else { bail!("{USAGE}") };
    let db = open(flag(args, "--db").context(USAGE)?).await?;
    match command.as_str() {
        "consume" => {
            let brokers = flag(args, "--brokers").context(USAGE)?;
            let topic = flag(args, "--topic").unwrap_or("im.events");
            let group = flag(args, "--group").unwrap_or("im-analytics");
            let idle_exit = flag(args, "--idle-exit").map(str::parse::<u64>).transpose().context("--idle-exit: seconds")?;
            consume(&db, brokers, topic, group, idle_exit.map(Duration::from_secs)).await
        }
        "report" => report(&db).await,
        _ => bail!("{USAGE}"),
    }
}

async fn open(path: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?.create_if_missing(true);
    let db = SqlitePool::connect_with(options).await.with_context(|| format!("opening {path}"))?;
    for sql in [
        "CREATE TABLE IF NOT EXISTS applied (position INTEGER PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS active_users (day TEXT NOT NULL, user_id INTEGER NOT NULL, PRIMARY KEY (day, user_id))",
        "CREATE TABLE IF NOT EXISTS daily_messages (day TEXT PRIMARY KEY, messages INTEGER NOT NULL)",
    ] {
        sqlx::query(sql).execute(&db).await?;
    }
    Ok(db)
}

/// Reads the topic from the start (for a new group) and applies every record; with
/// `idle_exit`, stops once nothing arrived for that long.
async fn consume(db: &SqlitePool, brokers: &str, topic: &str, group: &str, idle_exit: Option<Duration>) -> anyhow::Result<()> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut applied = 0u64;
    loop {
        let message = match idle_exit {
            Some(idle) => match tokio::time::timeout(idle, consumer.recv()).await {
                Ok(message) => message?,
                Err(_) => break,
            },
            None => consumer.recv().await?,
        };
        let Some(payload) = message.payload() else { continue };
        let record: Value = serde_json::from_slice(payload).context("a record that is not JSON")?;
        if apply(db, &record).await? {
            applied += 1;
        }
        // After the effect is stored: a crash in between reads the record again, and
        // its position makes that a no-op.
        consumer.commit_message(&message, CommitMode::Async)?;
    }
    writeln!(std::io::stderr(), "im-analytics: applied {applied} new records")?;
    Ok(())
}

/// Applies one record; false when its position was applied before.
async fn apply(db: &SqlitePool, record: &Value) -> anyhow::Result<bool> {
    let position = record["position"].as_i64().context("a record without a position")?;
    let at = record["recorded_at"].as_i64().context("a record without recorded_at")?;
    let day = utc_day(at);
    let mut tx = db.begin().await?;
    let fresh = sqlx::query("INSERT OR IGNORE INTO applied (position) VALUES (?)").bind(position).execute(&mut *tx).await?;
    if fresh.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(actor) = record["metadata"]["actor"].as_i64() {
        sqlx::query("INSERT OR IGNORE INTO active_users (day, user_id) VALUES (?, ?)").bind(&day).bind(actor).execute(&mut *tx).await?;
    }
    if record["event_type"] == "MessageSent" {
        sqlx::query("INSERT INTO daily_messages (day, messages) VALUES (?, 1) ON CONFLICT (day) DO UPDATE SET messages = messages + 1")
            .bind(&day)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// `day  active_users  messages`, a line per day, oldest first.
async fn report(db: &SqlitePool) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT d.day, (SELECT COUNT(*) FROM active_users a WHERE a.day = d.day), COALESCE(m.messages, 0) \
         FROM (SELECT day FROM active_users UNION SELECT day FROM daily_messages) d \
         LEFT JOIN daily_messages m ON m.day = d.day ORDER BY d.day",
    )
    .fetch_all(db)
    .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "day\tactive_users\tmessages")?;
    for (day, active, messages) in rows {
        writeln!(out, "{day}\t{active}\t{messages}")?;
    }
    Ok(())
}

/// The UTC calendar day (`YYYY-MM-DD`) of a Unix time in milliseconds.
fn utc_day(millis: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = millis.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::utc_day;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_700_000_015_000), "2023-11-14");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
        assert_eq!(utc_day(951_868_799_999), "2000-02-29");
        assert_eq!(utc_day(951_868_800_000), "2000-03-01");
        assert_eq!(utc_day(-1), "1969-12-31");
    }
}
