//! The projector runtime: one task applies every projection, batch after batch, in one
//! read-model transaction per batch that also moves the checkpoints.
//!
//! Where batches come from: the event store's feed (this process's commits, in order,
//! without reading them back) when a commit follows on exactly from the runner's
//! position; the log otherwise (catching up at start, commits of other processes, a
//! feed that overflowed). Events are decoded once and handed to the projections that
//! [handle](Projection::handles) their type; a projection with nothing in a batch writes
//! nothing for it: its checkpoint moves in memory and is written along with the next
//! transaction that happens anyway, at most every [`IDLE_FLUSH`].
//!
//! Every transaction also records the runner's own position (`projector`), which
//! processes that only follow the projections (gateways) wait on for read-your-writes.
//!
//! The *trailing* projections (the search index) are applied by a second task behind
//! the runner — never past its position, so they may read what the runner's projections
//! wrote — in transactions of their own, each taking every event the runner got past
//! since the one before, at most one every [`TRAIL_PAUSE`] while the log moves. Their
//! work (an FTS merge can take a while) never holds up the runner, which hands
//! deliveries on; a query that needs them waits with [`Projector::wait_trailing`].

use crate::checkpoints;
use crate::directory::{Directory, Keys};
use crate::inbox::{self, Mark};
pub use crate::projection::{Applied, Projection};
use crate::projection::{DecodedRange, READ_AHEAD, ReadRange, drop_aside};
use crate::{ReadDb, ReadError};
use im_domain::Event;
use im_eventlog::{FeedBatch, SharedEventStore, StoredEvent};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

/// Events read from the log per batch.
const BATCH: i64 = 2000;
/// Positions a rebuild replays per transaction by default (`IM_REBUILD_RANGE`), and a
/// projector catching up reads per batch.
pub const REBUILD_RANGE: i64 = 20_000;
/// How long a projection's checkpoint may go unwritten while it ignores batches.
pub const IDLE_FLUSH: Duration = Duration::from_secs(2);
/// The trailing runner's pause after a batch it wrote: while the log moves, one
/// transaction (and one index segment) per pause instead of one per runner batch.
pub const TRAIL_PAUSE: Duration = Duration::from_millis(50);
/// A safety net: how often to look at the log when nothing announced an append.
const POLL: Duration = Duration::from_secs(1);
/// Committed batches kept from the feed while the runner is busy; beyond that it
/// reads the log.
const READY_BATCHES: usize = 1024;
/// The runner stops gathering commits into one batch at this many events.
const GATHER_EVENTS: usize = 512;
/// A read of the log at least this large (and short of [`BATCH`]) tells a projector
/// process that the log is moving fast: it lets the log move for `Extras::log_gather`
/// before its next read. A smaller read means a quiet log, read again at once.
pub const LOG_GATHER_MIN: usize = 16;
/// Delivery marks taken per transaction.
const MARKS_PER_BATCH: usize = 20_000;
/// The pseudo-checkpoint of the runner itself.
pub const RUNNER: &str = "projector";
/// The channel on which the runner announces its position after each commit (Postgres).
const PROJECTED: &str = "im_projected";
/// A follower's safety net: how often it reads the runner's stored position while it
/// hears the runner's announcements.
pub const FOLLOW_SAFETY_NET: Duration = Duration::from_secs(1);
/// How often a follower reads the runner's stored position when it cannot hear the
/// announcements (SQLite, or the listening connection is down).
const FOLLOW_POLL: Duration = Duration::from_millis(10);

/// What else the runner takes care of.
#[derive(Default)]
pub struct Extras {
    /// Delivery marks from this process's sockets (embedded mode).
    pub marks: Option<mpsc::Receiver<Mark>>,
    /// Cached facts to invalidate after each commit (other processes learn of the keys
    /// through `NOTIFY`, on Postgres).
    pub directory: Option<Directory>,
    /// How long the runner may gather commits nobody waits for into one batch. Only
    /// where every reader that needs the read models waits in this process (embedded):
    /// a follower's wait cannot end the gathering.
    pub gather: Duration,
    /// How long the runner lets the log move after a read of [`LOG_GATHER_MIN`] events
    /// or more that did not fill a batch, before reading again (a projector process, whose
    /// commits are other processes': while the log moves fast, one transaction carries
    /// the commits of that while). Its deliveries and followers' waits are that much
    /// later under load; a caller of `wait_for` in this process ends the wait.
    pub log_gather: Duration,
}

/// Handle to the running projections.
#[derive(Clone)]
pub struct Projector {
    names: Vec<&'static str>,
    position: watch::Receiver<i64>,
    /// Callers in [`wait_for`](Self::wait_for) or [`wait_trailing`](Self::wait_trailing)
    /// right now: the runner gathers commits into bigger batches only while nobody waits.
    waiting: Arc<Waiting>,
    checkpoints: watch::Receiver<Vec<i64>>,
    trail: Trail,
}

/// Where the trailing projections are applied, and how to learn how far they got.
#[derive(Clone)]
enum Trail {
    /// By this process: the trailing runner's position.
    Here { names: Vec<&'static str>, position: watch::Receiver<i64> },
    /// By another process: their checkpoints, read when someone waits (and as the
    /// follower's safety net reads the runner's, for [`Projector::positions`]).
    Elsewhere { projections: Vec<Arc<dyn Projection>>, store: SharedEventStore, db: ReadDb, seen: watch::Receiver<Vec<i64>> },
}

impl Projector {
    /// Starts the runner for `projections`, each from its stored checkpoint, and the
    /// trailing runner for `trailing` behind it.
    pub async fn start(
        store: SharedEventStore,
        db: ReadDb,
        projections: Vec<Arc<dyn Projection>>,
        trailing: Vec<Arc<dyn Projection>>,
        extras: Extras,
    ) -> Result<Self, ReadError> {
        let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        let mut stored = Vec::with_capacity(names.len());
        for name in &names {
            stored.push(checkpoints::load(&db, name).await?);
        }
        let position = stored.iter().copied().min().unwrap_or(0);
        let (position_tx, position_rx) = watch::channel(position);
        let (checkpoints_tx, checkpoints_rx) = watch::channel(stored.clone());
        for p in &projections {
            p.clone().run_ahead(store.subscribe(), position_rx.clone());
        }
        let trail = Trailer::start(store.clone(), db.clone(), trailing, position_rx.clone()).await?;
        let waiting = Arc::new(Waiting::default());
        let runner = Runner {
            waiting: waiting.clone(),
            gather: extras.gather,
            log_gather: extras.log_gather,
            store,
            db,
            applied: stored.clone(),
            stored,
            projections,
            position,
            published: position_tx,
            checkpoints: checkpoints_tx,
            extras,
            marks: Vec::new(),
            last_flush: Instant::now(),
        };
        if runner.db.backend() == crate::db::Backend::Postgres {
            // On Postgres a batch is a chain of round trips, each waiting on the one before:
            // the runner gets a thread and connections of its own, so it never waits behind
            // the sockets' tasks to be polled again.
            std::thread::Builder::new()
                .name("im-projector".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(r) => r,
                        Err(e) => return tracing::error!(error = %e, "projector runtime"),
                    };
                    runtime.block_on(async move {
                        let mut runner = runner;
                        loop {
                            match runner.db.reconnect().await {
                                Ok(own) => {
                                    runner.db = own;
                                    break;
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "projector cannot connect; retrying");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                        runner.run().await
                    });
                })
                .map_err(|e| ReadError::Store(im_eventlog::StoreError(format!("starting the projector: {e}"))))?;
        } else {
            tokio::spawn(runner.run());
        }
        Ok(Self { names, position: position_rx, waiting, checkpoints: checkpoints_rx, trail })
    }

    /// Follows the runner of another process (the `projector` role) through its stored
    /// position, so this process's commands still get read-your-writes. On Postgres the
    /// runner announces each commit (`NOTIFY im_projected`), so a command's wait ends
    /// as soon as the projector has committed; the stored position is read again only as
    /// a safety net (every [`FOLLOW_SAFETY_NET`], and every [`FOLLOW_POLL`] while the
    /// announcements cannot be heard).
    /// The `trailing` projections are applied there too; [`wait_trailing`](Self::wait_trailing)
    /// reads their checkpoints (and the log, for whether they have anything to apply).
    pub async fn follow(
        store: SharedEventStore,
        db: ReadDb,
        names: &[&'static str],
        trailing: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ReadError> {
        Self::follow_with(store, db, names, trailing, FOLLOW_SAFETY_NET).await
    }

    /// [`follow`](Self::follow) with another safety net (tests use a long one to show
    /// that the announcements alone keep up).
    pub async fn follow_with(
        store: SharedEventStore,
        db: ReadDb,
        names: &[&'static str],
        trailing: Vec<Arc<dyn Projection>>,
        safety_net: Duration,
    ) -> Result<Self, ReadError> {
        let runner = checkpoints::load(&db, RUNNER).await?;
        let mut each = Vec::new();
        for name in names {
            each.push(checkpoints::load(&db, name).await?.max(runner));
        }
        let mut behind = Vec::new();
        for p in &trailing {
            behind.push(checkpoints::load(&db, p.name()).await?);
        }
        let (position_tx, position) = watch::channel(runner);
        let (checkpoints_tx, checkpoints) = watch::channel(each);
        let (trailing_tx, seen) = watch::channel(behind);
        let names = names.to_vec();
        let trailing_names = trailing.iter().map(|p| p.name()).collect();
        let followed = Followed { position: position_tx, checkpoints: checkpoints_tx, trailing: trailing_tx, trailing_names };
        tokio::spawn(followed.run(db.clone(), safety_net, names.clone()));
        let trail = Trail::Elsewhere { projections: trailing, store, db, seen };
        Ok(Self { names, position, waiting: Arc::default(), checkpoints, trail })
    }

    /// Each projection's name and how far it has applied the log (the trailing ones
    /// last).
    pub fn positions(&self) -> Vec<(&'static str, i64)> {
        let mut all: Vec<(&'static str, i64)> = self.names.iter().copied().zip(self.checkpoints.borrow().iter().copied()).collect();
        match &self.trail {
            Trail::Here { names, position } => all.extend(names.iter().map(|n| (*n, *position.borrow()))),
            Trail::Elsewhere { projections, seen, .. } => {
                all.extend(projections.iter().map(|p| p.name()).zip(seen.borrow().iter().copied()))
            }
        }
        all
    }

    /// Waits until the trailing projections (the search index) have applied the log up
    /// to `position` — or have nothing to apply up to it. What a search waits on.
    pub async fn wait_trailing(&self, position: i64) -> Result<(), ReadError> {
        match &self.trail {
            // The trailing runner follows the runner: it gathers nothing meanwhile.
            Trail::Here { position: at, .. } => self.reach(at, position).await,
            Trail::Elsewhere { projections, store, db, .. } => {
                let types = types_of(projections);
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let mut at = i64::MAX;
                    for p in projections {
                        at = at.min(checkpoints::load(db, p.name()).await?);
                    }
                    // Its runner moves a checkpoint in memory only while it has nothing to write.
                    if at >= position || store.read_range(at, position, &types).await?.is_empty() {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(ReadError::Lagging(position));
                    }
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
            }
        }
    }

    /// How far every projection has applied the log.
    pub fn position(&self) -> i64 {
        *self.position.borrow()
    }

    /// Waits until every projection has applied the log up to `position`
    /// (read-your-writes for a command that appended there).
    pub async fn wait_for(&self, position: i64) -> Result<(), ReadError> {
        self.reach(&self.position, position).await
    }

    /// Waits (at most 30 s) until `at` reaches `position`, counted among the runner's
    /// waiters meanwhile, so it does not gather.
    async fn reach(&self, at: &watch::Receiver<i64>, position: i64) -> Result<(), ReadError> {
        let mut rx = at.clone();
        if *rx.borrow() >= position {
            return Ok(());
        }
        let _waiting = WaitGuard::new(&self.waiting);
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|p| *p >= position))
            .await
            .map_err(|_| ReadError::Lagging(position))?
            .map_err(|_| ReadError::Lagging(position))?;
        Ok(())
    }
}

/// The follower's side: where the runner of another process has got to.
struct Followed {
    position: watch::Sender<i64>,
    checkpoints: watch::Sender<Vec<i64>>,
    /// The trailing projections' stored checkpoints (read with the safety net).
    trailing: watch::Sender<Vec<i64>>,
    trailing_names: Vec<&'static str>,
}

impl Followed {
    /// The checkpoints move first: whoever the position wakes (`wait_for`) must find them
    /// there too (the other order let a waiter read them unmoved).
    fn saw(&self, p: i64) {
        self.checkpoints.send_if_modified(|c| {
            let behind = c.iter().any(|x| *x < p);
            c.iter_mut().for_each(|x| *x = (*x).max(p));
            behind
        });
        self.position.send_if_modified(|old| std::mem::replace(old, p.max(*old)) != *old);
    }

    fn gone(&self) -> bool {
        self.position.is_closed()
    }

    /// Reads the stored position (after a gap in the announcements, and as a safety net).
    async fn read(&self, db: &ReadDb, names: &[&'static str]) {
        match checkpoints::load(db, RUNNER).await {
            Ok(p) => self.saw(p),
            Err(e) => tracing::warn!(error = %e, projections = ?names, "cannot read the projector's position"),
        }
        let mut behind = Vec::with_capacity(self.trailing_names.len());
        for name in &self.trailing_names {
            match checkpoints::load(db, name).await {
                Ok(p) => behind.push(p),
                Err(_) => return,
            }
        }
        self.trailing.send_if_modified(|old| std::mem::replace(old, behind) != *old);
    }

    async fn run(self, db: ReadDb, safety_net: Duration, names: Vec<&'static str>) {
        while !self.gone() {
            if db.backend() == crate::db::Backend::Postgres {
                match sqlx::postgres::PgListener::connect(db.url()).await {
                    Ok(mut listener) => match listener.listen(PROJECTED).await {
                        Ok(()) => self.hear(&mut listener, &db, safety_net, &names).await,
                        Err(e) => tracing::warn!(error = %e, "cannot listen for the projector's commits"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot connect to hear the projector's commits"),
                }
            }
            // Not hearing the announcements: poll for a while, then try again.
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until && !self.gone() {
                tokio::time::sleep(FOLLOW_POLL).await;
                self.read(&db, &names).await;
            }
        }
    }

    /// Follows the announcements until the connection fails or nobody follows any more.
    async fn hear(&self, listener: &mut sqlx::postgres::PgListener, db: &ReadDb, safety_net: Duration, names: &[&'static str]) {
        loop {
            // Whatever was committed before (or while) we were not listening.
            self.read(db, names).await;
            let deadline = tokio::time::sleep(safety_net);
            tokio::pin!(deadline);
            loop {
                if self.gone() {
                    return;
                }
                tokio::select! {
                    note = listener.recv() => match note {
                        Ok(note) => match note.payload().parse::<i64>() {
                            Ok(p) => self.saw(p),
                            Err(_) => tracing::warn!(payload = note.payload(), "an announcement that is not a position"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the projector's announcements");
                            return;
                        }
                    },
                    _ = &mut deadline => break,
                }
            }
        }
    }
}

struct Runner {
    store: SharedEventStore,
    db: ReadDb,
    projections: Vec<Arc<dyn Projection>>,
    /// Per projection: what its stored checkpoint says …
    stored: Vec<i64>,
    /// … and how far it has applied the log.
    applied: Vec<i64>,
    /// The lowest `applied`: where the next batch starts.
    position: i64,
    published: watch::Sender<i64>,
    checkpoints: watch::Sender<Vec<i64>>,
    extras: Extras,
    /// Marks received while waiting, written with the next step.
    marks: Vec<Mark>,
    last_flush: Instant,
    waiting: Arc<Waiting>,
    gather: Duration,
    log_gather: Duration,
}

/// Who waits for the runner: a count, and a wake-up for a runner that is gathering.
#[derive(Default)]
struct Waiting {
    count: std::sync::atomic::AtomicUsize,
    arrived: tokio::sync::Notify,
}

/// One caller in [`Projector::wait_for`] or [`Projector::wait_trailing`].
struct WaitGuard<'a>(&'a Waiting);

impl<'a> WaitGuard<'a> {
    fn new(w: &'a Waiting) -> Self {
        w.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        w.arrived.notify_one();
        Self(w)
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

enum Step {
    Applied,
    /// Another instance moved a checkpoint first: nothing applied.
    Overtaken,
}

impl Runner {
    async fn run(mut self) {
        let mut feed = self.store.subscribe();
        let mut head = self.store.watch_head();
        let mut ready: VecDeque<FeedBatch> = VecDeque::new();
        // Catch up from the log first, until it has nothing more.
        let mut from_log = true;
        let mut gathering: Option<Instant> = None;
        // Events the last read of the log returned.
        let mut last_read = 0;
        loop {
            if self.published.is_closed() {
                return;
            }
            if take_feed(&mut feed, &mut ready) {
                from_log = true;
            }
            drop_behind(&mut ready, self.position);
            // Nobody waits for this batch (the sockets got their rows from the sequencer
            // already): gather the commits that follow for a moment, so one transaction
            // carries many. A caller of `wait_for` ends the gathering at once.
            // (The head moves just before the feed carries the commit: a head ahead of an
            // empty queue is a commit on its way, not a reason to read the log.)
            let next_on_feed = match ready.front() {
                Some(c) => c.after == self.position,
                None => *head.borrow() > self.position,
            };
            if !self.gather.is_zero()
                && !from_log
                && next_on_feed
                && self.waiting.count.load(std::sync::atomic::Ordering::SeqCst) == 0
                && ready.iter().map(|c| c.events.len()).sum::<usize>() < GATHER_EVENTS
            {
                let since = *gathering.get_or_insert_with(Instant::now);
                let left = self.gather.saturating_sub(since.elapsed());
                if !left.is_zero() {
                    tokio::select! {
                        commit = feed.recv() => match commit {
                            Ok(c) => ready.push_back(c),
                            Err(_) => from_log = true,
                        },
                        _ = self.waiting.arrived.notified() => {}
                        _ = tokio::time::sleep(left) => {}
                    }
                    continue;
                }
            }
            gathering = None;
            let outcome = if ready.front().is_some_and(|c| c.after == self.position) && !from_log {
                // Straight from the feed: every commit that follows on without a gap.
                let mut take = Vec::new();
                let mut at = self.position;
                while let Some(c) = ready.front().filter(|c| c.after == at) {
                    at = c.events.last().map_or(at, |e| e.position);
                    take.push(c.clone());
                    ready.pop_front();
                }
                let events: Vec<&StoredEvent> = take.iter().flat_map(|c| c.events.iter()).collect();
                self.step(&events).await.map(Some)
            } else if from_log || !ready.is_empty() || *head.borrow_and_update() > self.position {
                if self.log_moves_fast(last_read) {
                    tokio::select! {
                        _ = self.waiting.arrived.notified() => {}
                        _ = tokio::time::sleep(self.log_gather) => {}
                    }
                }
                let read = self.store.read_all(self.position, BATCH).await;
                last_read = read.as_ref().map_or(0, Vec::len);
                match read {
                    Ok(batch) if batch.is_empty() => {
                        from_log = false;
                        // Whatever the feed still holds is not in the log: drop it.
                        ready.clear();
                        Ok(None)
                    }
                    Ok(batch) => {
                        let events: Vec<&StoredEvent> = batch.iter().collect();
                        self.step(&events).await.map(Some)
                    }
                    Err(e) => Err(e.into()),
                }
            } else if !self.marks.is_empty() || self.extras.marks.as_ref().is_some_and(|m| !m.is_empty()) {
                self.step(&[]).await.map(Some)
            } else {
                // Nothing to do: wait for a commit, a mark or a head move.
                tokio::select! {
                    commit = feed.recv() => match commit {
                        Ok(c) => ready.push_back(c),
                        Err(_) => from_log = true,
                    },
                    _ = head.changed() => {}
                    Some(mark) = next_mark(self.extras.marks.as_mut()) => self.marks.push(mark),
                    _ = tokio::time::sleep(POLL) => from_log = true,
                }
                continue;
            };
            match outcome {
                Ok(Some(Step::Applied)) | Ok(None) => {}
                Ok(Some(Step::Overtaken)) => {
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "cannot reload checkpoints");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    ready.clear();
                    from_log = true;
                }
                Err(e) => {
                    // Never skip: apply the same events again after a pause.
                    tracing::error!(position = self.position, error = %e, "projection batch failed");
                    ready.clear();
                    from_log = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Whether to let the log move before reading it again: a read of `last_read` events
    /// (at least [`LOG_GATHER_MIN`], short of a full batch) while nobody here waits.
    fn log_moves_fast(&self, last_read: usize) -> bool {
        !self.log_gather.is_zero()
            && (LOG_GATHER_MIN..BATCH as usize).contains(&last_read)
            && self.waiting.count.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    /// Another instance moved the checkpoints: start again from the stored ones.
    async fn reload(&mut self) -> Result<(), ReadError> {
        for (i, p) in self.projections.iter().enumerate() {
            p.forget();
            let c = checkpoints::load(&self.db, p.name()).await?;
            self.stored[i] = c;
            self.applied[i] = c;
        }
        self.position = self.applied.iter().copied().min().unwrap_or(0);
        Ok(())
    }

    /// Applies one batch (events in position order, possibly none when there are only
    /// delivery marks to write) in one transaction.
    async fn step(&mut self, events: &[&StoredEvent]) -> Result<Step, ReadError> {
        let last = events.last().map_or(self.position, |e| e.position);
        let decoded = decode(events, |t| self.projections.iter().any(|p| p.handles(t)))?;
        let applied: Vec<Applied<'_>> = decoded.iter().map(|(stored, event)| Applied::of(stored, event)).collect();
        let mut marks = std::mem::take(&mut self.marks);
        if let Some(rx) = self.extras.marks.as_mut() {
            while marks.len() < MARKS_PER_BATCH {
                match rx.try_recv() {
                    Ok(m) => marks.push(m),
                    Err(_) => break,
                }
            }
        }
        let touched: Vec<Cow<'_, [Applied<'_>]>> =
            self.projections.iter().zip(&self.applied).map(|(p, at)| mine(&**p, *at, &applied)).collect();
        let flush_idle = self.last_flush.elapsed() >= IDLE_FLUSH;
        if touched.iter().all(|mine| mine.is_empty()) && marks.iter().all(|m| matches!(m, Mark::Flushed(_))) {
            // Nobody has anything to write: move on in memory.
            self.advance(last, &vec![false; self.projections.len()], &Keys::default());
            marks.into_iter().for_each(Mark::done);
            return Ok(Step::Applied);
        }
        let keys = Keys::of(&applied);
        let span = tracing::debug_span!("projection_batch", from = self.position, to = last, events = events.len(), marks = marks.len());
        let mut tx = self.db.begin_write().await?;
        let outcome = async {
            for (p, mine) in self.projections.iter().zip(&touched) {
                if !mine.is_empty() {
                    p.apply(&mut tx, mine).await?;
                }
            }
            inbox::apply_marks(&mut tx, &marks).await?;
            let mut written = vec![false; self.projections.len()];
            for (i, p) in self.projections.iter().enumerate() {
                if self.applied[i] < last && (!touched[i].is_empty() || flush_idle) {
                    if !checkpoints::move_from(&mut tx, p.name(), self.stored[i], last).await? {
                        return Ok(None);
                    }
                    written[i] = true;
                }
            }
            checkpoints::advance(&mut tx, RUNNER, last).await?;
            if self.db.backend() == crate::db::Backend::Postgres {
                keys.announce(&mut tx).await?;
                // Delivered on commit, to the processes that follow this runner.
                sqlx::query("SELECT pg_notify($1, $2)").bind(PROJECTED).bind(last.to_string()).execute(&mut *tx).await?;
            }
            Ok::<_, ReadError>(Some(written))
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(Some(written)) => {
                tx.commit().await.inspect_err(|_| self.projections.iter().for_each(|p| p.aborted()))?;
                if flush_idle {
                    self.last_flush = Instant::now();
                }
                self.advance(last, &written, &keys);
                for p in &self.projections {
                    p.committed();
                }
                marks.into_iter().for_each(Mark::done);
                Ok(Step::Applied)
            }
            Ok(None) => {
                tx.rollback().await?;
                // The marks are not lost with the batch: they go with the next one.
                self.marks = marks;
                Ok(Step::Overtaken)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                for p in &self.projections {
                    p.aborted();
                }
                self.marks = marks;
                Err(e)
            }
        }
    }

    /// The batch up to `last` is applied (and committed where anything was written).
    fn advance(&mut self, last: i64, written: &[bool], keys: &Keys) {
        for ((applied, stored), written) in self.applied.iter_mut().zip(self.stored.iter_mut()).zip(written) {
            *applied = (*applied).max(last);
            if *written {
                *stored = last;
            }
        }
        self.position = self.applied.iter().copied().min().unwrap_or(last);
        if let Some(directory) = &self.extras.directory {
            directory.invalidate(keys);
        }
        self.checkpoints.send_replace(self.applied.clone());
        self.published.send_replace(self.position);
    }
}

/// The event types some of `projections` handle (what the bulk reader is asked for).
fn types_of(projections: &[Arc<dyn Projection>]) -> Vec<&'static str> {
    Event::TYPES.iter().copied().filter(|t| projections.iter().any(|p| p.handles(t))).collect()
}

/// The trailing runner: applies its projections behind the runner's position, one
/// transaction per batch that also moves their checkpoints. It takes the events from the
/// feed when the commits there cover its batch without a gap (at most [`READY_BATCHES`]
/// kept), else it reads the log with the bulk reader (only the types they handle).
struct Trailer {
    store: SharedEventStore,
    feed: broadcast::Receiver<FeedBatch>,
    /// Commits from the feed not yet wholly behind `position`, in order.
    fed: VecDeque<FeedBatch>,
    db: ReadDb,
    projections: Vec<Arc<dyn Projection>>,
    types: Vec<&'static str>,
    /// Per projection: its stored checkpoint.
    stored: Vec<i64>,
    /// How far all of them have applied the log (in memory: a batch with nothing to
    /// write moves no checkpoint until [`IDLE_FLUSH`]).
    position: i64,
    /// The runner's position: never passed.
    leader: watch::Receiver<i64>,
    published: watch::Sender<i64>,
    last_flush: Instant,
}

impl Trailer {
    async fn start(
        store: SharedEventStore,
        db: ReadDb,
        projections: Vec<Arc<dyn Projection>>,
        leader: watch::Receiver<i64>,
    ) -> Result<Trail, ReadError> {
        let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        let mut stored = Vec::with_capacity(projections.len());
        for p in &projections {
            stored.push(checkpoints::load(&db, p.name()).await?);
        }
        // Nothing trailing: always caught up.
        let position = stored.iter().copied().min().unwrap_or(i64::MAX);
        let (published, rx) = watch::channel(position);
        if !projections.is_empty() {
            let types = types_of(&projections);
            let feed = store.subscribe();
            let trailer = Trailer {
                store,
                feed,
                fed: VecDeque::new(),
                db,
                projections,
                types,
                stored,
                position,
                leader,
                published,
                last_flush: Instant::now(),
            };
            tokio::spawn(trailer.run());
        }
        Ok(Trail::Here { names, position: rx })
    }

    async fn run(mut self) {
        loop {
            let target = *self.leader.borrow_and_update();
            if target <= self.position {
                tokio::select! {
                    changed = self.leader.changed() => if changed.is_err() { return },
                    _ = self.published.closed() => return,
                    // Idle: write the checkpoints moved in memory.
                    _ = tokio::time::sleep(IDLE_FLUSH), if self.stored.iter().any(|s| *s < self.position) => {
                        if let Err(e) = self.step(self.position, true).await {
                            tracing::warn!(error = %e, "cannot write the trailing checkpoints");
                        }
                    }
                }
                continue;
            }
            let upto = target.min(self.position.saturating_add(REBUILD_RANGE));
            let flush = self.last_flush.elapsed() >= IDLE_FLUSH;
            match self.step(upto, flush).await {
                // Let the next batch gather while the log moves.
                Ok(true) => tokio::time::sleep(TRAIL_PAUSE).await,
                Ok(false) => {}
                Err(e) => {
                    // Never skip: apply the same events again after a pause.
                    tracing::error!(position = self.position, error = %e, "trailing projection batch failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "cannot reload the trailing checkpoints");
                    }
                }
            }
        }
    }

    /// Applies the log from `position` up to `upto`; true when it wrote a transaction.
    async fn step(&mut self, upto: i64, flush: bool) -> Result<bool, ReadError> {
        // Whichever way the events come, `applied` borrows them from one of these.
        let fed: Vec<FeedBatch>;
        let decoded_fed: Vec<(&StoredEvent, Event)>;
        let decoded_read: Vec<(StoredEvent<String>, Event)>;
        let applied: Vec<Applied<'_>> = match self.covered_by_feed(upto) {
            Some(commits) => {
                fed = commits;
                let (from, types) = (self.position, &self.types);
                let events: Vec<&StoredEvent> =
                    fed.iter().flat_map(|c| c.events.iter()).filter(|e| e.position > from && e.position <= upto).collect();
                decoded_fed = decode(&events, |t| types.contains(&t))?;
                decoded_fed.iter().map(|(stored, event)| Applied::of(*stored, event)).collect()
            }
            None => {
                let batch = self.store.read_range(self.position, upto, &self.types).await?;
                decoded_read = decode_bulk(batch).await?;
                decoded_read.iter().map(|(stored, event)| Applied::of(stored, event)).collect()
            }
        };
        let touched: Vec<Cow<'_, [Applied<'_>]>> =
            self.projections.iter().zip(&self.stored).map(|(p, at)| mine(&**p, *at, &applied)).collect();
        if touched.iter().all(|mine| mine.is_empty()) && !flush {
            self.advance(upto, false);
            return Ok(false);
        }
        let span = tracing::debug_span!("trailing_batch", from = self.position, to = upto, events = applied.len());
        let mut tx = self.db.begin_write().await?;
        let outcome = async {
            for (p, mine) in self.projections.iter().zip(&touched) {
                if !mine.is_empty() {
                    p.apply(&mut tx, mine).await?;
                }
            }
            for (p, from) in self.projections.iter().zip(&self.stored) {
                if *from < upto && !checkpoints::move_from(&mut tx, p.name(), *from, upto).await? {
                    return Ok(false);
                }
            }
            Ok::<_, ReadError>(true)
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(true) => {
                tx.commit().await.inspect_err(|_| self.projections.iter().for_each(|p| p.aborted()))?;
                self.projections.iter().for_each(|p| p.committed());
                self.advance(upto, true);
                Ok(true)
            }
            Ok(false) => {
                // Another instance moved a checkpoint first: start again from the stored ones.
                tx.rollback().await?;
                self.reload().await?;
                Ok(false)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                self.projections.iter().for_each(|p| p.aborted());
                Err(e)
            }
        }
    }

    /// The commits on the feed that hold every event from `position` up to `upto`, when
    /// they follow one another without a gap (`None`: read the log). Nothing to apply is
    /// `Some` of none.
    fn covered_by_feed(&mut self, upto: i64) -> Option<Vec<FeedBatch>> {
        // What was lost on the way shows as a gap below.
        take_feed(&mut self.feed, &mut self.fed);
        drop_behind(&mut self.fed, self.position);
        let mut at = self.position;
        let mut take = 0;
        for commit in &self.fed {
            if at >= upto {
                break;
            }
            if let Some(last) = commit.events.last() {
                // Between `after` and its last event this commit holds every position.
                if commit.after > at {
                    return None;
                }
                at = at.max(last.position);
            }
            take += 1;
        }
        (at >= upto).then(|| self.fed.iter().take(take).cloned().collect())
    }

    fn advance(&mut self, upto: i64, written: bool) {
        if written {
            self.stored.iter_mut().for_each(|s| *s = (*s).max(upto));
            self.last_flush = Instant::now();
        }
        self.position = self.position.max(upto);
        self.published.send_replace(self.position);
    }

    async fn reload(&mut self) -> Result<(), ReadError> {
        for (i, p) in self.projections.iter().enumerate() {
            p.forget();
            self.stored[i] = checkpoints::load(&self.db, p.name()).await?;
        }
        self.position = self.stored.iter().copied().min().unwrap_or(self.position);
        self.published.send_replace(self.position);
        Ok(())
    }
}

/// Moves the commits waiting on `feed` into `ready`, which keeps at most
/// [`READY_BATCHES`]; true when some were lost on the way (the feed lagged, or `ready`
/// overflowed and was emptied), so the log holds commits `ready` does not.
fn take_feed(feed: &mut broadcast::Receiver<FeedBatch>, ready: &mut VecDeque<FeedBatch>) -> bool {
    let mut lost = false;
    loop {
        match feed.try_recv() {
            Ok(commit) => ready.push_back(commit),
            Err(TryRecvError::Lagged(_)) => {
                ready.clear();
                lost = true;
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return lost,
        }
        if ready.len() > READY_BATCHES {
            ready.clear();
            lost = true;
        }
    }
}

/// Drops the commits of `ready` that lie wholly at or behind `position`.
fn drop_behind(ready: &mut VecDeque<FeedBatch>, position: i64) {
    while ready.front().is_some_and(|c| c.events.last().is_none_or(|e| e.position <= position)) {
        ready.pop_front();
    }
}

async fn next_mark(marks: Option<&mut mpsc::Receiver<Mark>>) -> Option<Mark> {
    match marks {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Decodes the events some projection handles (once for all of them).
fn decode<'a>(events: &[&'a StoredEvent], wanted: impl Fn(&str) -> bool) -> Result<Vec<(&'a StoredEvent, Event)>, ReadError> {
    // Sized once: a batch may hold thousands, and growing by doubling showed in the
    // profile (fresh pages faulted in for each larger copy).
    let mut decoded = Vec::with_capacity(events.iter().filter(|e| wanted(&e.event_type)).count());
    for stored in events.iter().filter(|e| wanted(&e.event_type)) {
        let event = Event::decode_str(&stored.event_type, stored.schema_version as u32, stored.payload.text())
            .map_err(|source| ReadError::Decode { position: stored.position, source })?;
        decoded.push((*stored, event));
    }
    Ok(decoded)
}

/// Decodes what the bulk reader read (payloads as text), on the blocking pool.
async fn decode_bulk(batch: Vec<StoredEvent<String>>) -> Result<Vec<(StoredEvent<String>, Event)>, ReadError> {
    tokio::task::spawn_blocking(move || {
        // Sized up front: a collect through `Result` would grow it by doubling.
        let mut decoded = Vec::with_capacity(batch.len());
        for mut stored in batch {
            let event = Event::decode_str(&stored.event_type, stored.schema_version as u32, &stored.payload)
                .map_err(|source| ReadError::Decode { position: stored.position, source })?;
            // Freed now rather than with the range, written two or three ranges later:
            // the peak's committed memory 266 -> 243 MiB, fewer pages freshly faulted.
            drop(std::mem::take(&mut stored.payload));
            decoded.push((stored, event));
        }
        Ok::<_, ReadError>(decoded)
    })
    .await
    .map_err(|e| im_eventlog::StoreError(format!("decoding a batch of the log: {e}")))?
}

/// The events of `applied` past `at` that `p` handles: borrowed when they are all the
/// events from the first one past `at` on (a rebuild's range of messages for the inbox
/// and the search index: copying 20,000 of them per projection and range was ~7 ms of
/// fresh memory on the writer's task); else a copy, sized once like [`decode`]'s.
fn mine<'s, 'a>(p: &dyn Projection, at: i64, applied: &'s [Applied<'a>]) -> Cow<'s, [Applied<'a>]> {
    mine_by(at, applied, |i| p.handles(applied[i].event_type))
}

/// [`mine`], with whether the projection handles `applied[i]` answered by `handles(i)`.
fn mine_by<'s, 'a>(at: i64, applied: &'s [Applied<'a>], handles: impl Fn(usize) -> bool) -> Cow<'s, [Applied<'a>]> {
    let wanted = |i: &usize| applied[*i].position > at && handles(*i);
    let first = applied.iter().position(|a| a.position > at).unwrap_or(applied.len());
    if (first..applied.len()).all(|i| wanted(&i)) {
        return Cow::Borrowed(&applied[first..]);
    }
    let mut out = Vec::with_capacity((0..applied.len()).filter(wanted).count());
    out.extend((0..applied.len()).filter(wanted).map(|i| applied[i]));
    Cow::Owned(out)
}

/// Which of a rebuild's projections (up to 64) handle each event type, as bits: asked
/// once per type, not per event and projection (each projection's `handles` compares
/// the type with a list of names; per event, 1.5 million comparisons for 224,608
/// positions on the writer's task).
#[derive(Default)]
struct Handlers {
    by_type: std::collections::HashMap<Box<str>, u64>,
}

impl Handlers {
    fn of(&mut self, projections: &[Arc<dyn Projection>], event_type: &str) -> u64 {
        if let Some(bits) = self.by_type.get(event_type) {
            return *bits;
        }
        let bits = projections.iter().take(64).enumerate().filter(|(_, p)| p.handles(event_type)).fold(0, |bits, (i, _)| bits | 1 << i);
        self.by_type.insert(event_type.into(), bits);
        bits
    }
}

/// Rebuilds read models: empties their tables and checkpoints, then replays the whole
/// log into them in large batches. `progress(position, head)` is called after every
/// batch. Run it while no projector is running these projections.
pub async fn rebuild(
    store: &dyn im_eventlog::EventStore,
    db: &ReadDb,
    projections: &[Arc<dyn Projection>],
    range: i64,
    progress: &mut dyn FnMut(i64, i64),
) -> Result<i64, ReadError> {
    let range = range.max(1);
    let mut tx = db.begin_write().await?;
    for p in projections {
        p.forget();
        p.reset(&mut tx).await?;
        checkpoints::forget(&mut tx, p.name()).await?;
    }
    tx.commit().await?;
    let head = store.head().await?;
    // Only the types these projections read: the others are skipped in the query.
    let types = types_of(projections);
    // Those that work ahead (the inbox plans seqs) get each range as soon as it is read.
    let (rebuilt, rebuilt_rx) = watch::channel(0);
    let ahead: Vec<_> = projections.iter().filter_map(|p| p.clone().ahead_of_rebuild(range, rebuilt_rx.clone())).collect();
    // A range of positions at a time, up to the head as it was at the start and then
    // to whatever was appended meanwhile, read and decoded up to READ_AHEAD ranges ahead
    // of the one being written (the ranges' costs vary: a range of registrations reads
    // slower than it writes, a group's fan-out the other way round).
    let (ranges, mut read) = mpsc::channel::<Result<(DecodedRange, i64), ReadError>>(READ_AHEAD);
    let reader = async move {
        let mut after = 0;
        // The first ranges are an eighth, a quarter and a half of `range`: the writer
        // waits for the first one to be read, and the planner has had no time to plan it.
        let mut size = (range / 8).max(1);
        loop {
            let read_one = async {
                let head = if after < head { head } else { store.head().await? };
                if after >= head {
                    return Ok((Arc::default(), after));
                }
                let upto = (after + size).min(head);
                let batch = store.read_range(after, upto, &types).await?;
                // Decoded off the task that applies the ranges before it.
                let decoded = Arc::new(decode_bulk(batch).await?);
                for tx in &ahead {
                    // A range it has no room for is planned by `apply`.
                    let _ = tx.try_send(ReadRange { after, upto, events: decoded.clone() });
                }
                Ok::<_, ReadError>((decoded, upto))
            }
            .await;
            let last = match &read_one {
                Ok((_, upto)) if *upto > after => Some(*upto),
                _ => None,
            };
            // Stops after the last range or an error, or when the writer stopped.
            if ranges.send(read_one).await.is_err() {
                return;
            }
            match last {
                Some(upto) => after = upto,
                None => return,
            }
            size = (size * 2).min(range);
        }
    };
    let writer = async move {
        let mut handlers = Handlers::default();
        let mut position = 0;
        progress(position, head);
        let mut held = db.hold_writer().await?;
        // Each range's transaction begins as soon as the one before it committed: the
        // connection's thread, just done with the commit, takes the BEGIN at once (left
        // idle while this task moved on to the next range, it took ~1.7 ms to wake).
        let mut tx = held.begin().await?;
        loop {
            let (decoded, last) = read.recv().await.ok_or_else(|| im_eventlog::StoreError("the rebuild's reader stopped".into()))??;
            if last == position {
                for p in projections {
                    p.rebuilt(&mut tx).await?;
                }
                tx.commit().await?;
                drop(held);
                db.settle().await?;
                return Ok(position);
            }
            let applied: Vec<Applied<'_>> = decoded.iter().map(|(stored, event)| Applied::of(stored, event)).collect();
            let handled: Vec<u64> = applied.iter().map(|a| handlers.of(projections, a.event_type)).collect();
            for (n, p) in projections.iter().enumerate() {
                let mine = match n {
                    0..64 => mine_by(position, &applied, |i| handled[i] & 1 << n != 0),
                    _ => mine(&**p, position, &applied),
                };
                if !mine.is_empty() {
                    p.apply(&mut tx, &mine).await?;
                }
                checkpoints::move_from(&mut tx, p.name(), position, last).await?;
            }
            tx.commit().await?;
            tx = held.begin().await?;
            for p in projections {
                p.committed();
            }
            rebuilt.send_replace(last);
            position = last;
            progress(position, head.max(position));
            drop(applied);
            drop_aside(decoded);
        }
    };
    // The writer's end (done or failed) drops `read`, which stops the reader.
    tokio::join!(reader, writer).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::askanswer::AskAnswerProjection;
    use im_domain::askanswer::AskAnswerDeleted;
    use im_domain::ids::UserId;

    fn applied<'a>(event: &'a Event, rows: &[(i64, &'static str)]) -> Vec<Applied<'a>> {
        rows.iter()
            .map(|(position, event_type)| Applied {
                position: *position,
                event_type,
                event_id: uuid::Uuid::nil(),
                recorded_at: 0,
                event,
                stream_id: "s",
                operator: None,
            })
            .collect()
    }

    #[test]
    fn a_projection_gets_the_range_itself_when_all_of_it_past_its_position_is_its_own() {
        let event = Event::AskAnswerDeleted(AskAnswerDeleted { user_id: UserId(1), id: 1, at: 0 });
        let p = AskAnswerProjection;
        let all = applied(&event, &[(1, "AskAnswerSaved"), (2, "AskAnswerDeleted"), (3, "AskAnswerSaved")]);
        let mine_all = mine(&p, 1, &all);
        assert!(matches!(mine_all, Cow::Borrowed(_)));
        assert_eq!(mine_all.iter().map(|a| a.position).collect::<Vec<_>>(), [2, 3]);

        let mixed = applied(&event, &[(1, "AskAnswerSaved"), (2, "UserRegistered"), (3, "AskAnswerSaved")]);
        let mine_mixed = mine(&p, 0, &mixed);
        assert!(matches!(mine_mixed, Cow::Owned(_)));
        assert_eq!(mine_mixed.iter().map(|a| a.position).collect::<Vec<_>>(), [1, 3]);

        // Whatever the order, nothing at or before `at` is handed over.
        let unordered = applied(&event, &[(5, "AskAnswerSaved"), (2, "AskAnswerSaved"), (6, "AskAnswerSaved")]);
        assert_eq!(mine(&p, 4, &unordered).iter().map(|a| a.position).collect::<Vec<_>>(), [5, 6]);
        assert!(mine(&p, 9, &all).is_empty());
    }

    #[test]
    fn a_rebuild_asks_each_projection_once_per_event_type() {
        let event = Event::AskAnswerDeleted(AskAnswerDeleted { user_id: UserId(1), id: 1, at: 0 });
        let projections: Vec<Arc<dyn Projection>> = vec![Arc::new(crate::push::PushProjection), Arc::new(AskAnswerProjection)];
        let mut handlers = Handlers::default();
        assert_eq!(handlers.of(&projections, "AskAnswerSaved"), 0b10);
        assert_eq!(handlers.of(&projections, "PushTargetRemoved"), 0b01);
        assert_eq!(handlers.of(&projections, "UserRegistered"), 0);
        assert_eq!(handlers.by_type.len(), 3);
        assert_eq!(handlers.of(&projections, "AskAnswerSaved"), 0b10);
        assert_eq!(handlers.by_type.len(), 3, "asked once");
        // Chosen by the bits, the same events as by asking.
        let all = applied(&event, &[(1, "AskAnswerSaved"), (2, "PushTargetRemoved"), (3, "AskAnswerDeleted")]);
        let bits: Vec<u64> = all.iter().map(|a| handlers.of(&projections, a.event_type)).collect();
        for (n, p) in projections.iter().enumerate() {
            let by_bits = mine_by(0, &all, |i| bits[i] & 1 << n != 0);
            assert_eq!(
                by_bits.iter().map(|a| a.position).collect::<Vec<_>>(),
                mine(&**p, 0, &all).iter().map(|a| a.position).collect::<Vec<_>>()
            );
        }
    }
}
