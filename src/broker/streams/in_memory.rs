//! The streams role in memory: a ring buffer per stream with consumer groups and pending
//! entries, for the embedded single-process mode.

use super::*;

/// In-process streams (single replica only).
#[derive(Clone)]
pub struct MemoryStreams {
    pub(super) inner: Arc<Mutex<HashMap<String, MemStream>>>,
    pub(super) maxlen: usize,
    /// New with each process: its streams start empty.
    pub(super) epoch: Arc<str>,
}

impl fmt::Debug for MemoryStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryStreams(maxlen {})", self.maxlen)
    }
}

pub(super) struct MemStream {
    pub(super) next_seq: u64,
    /// (sequence number, payload, when it was published), oldest first.
    pub(super) buf: VecDeque<(u64, Vec<u8>, Instant)>,
    pub(super) groups: HashMap<String, MemGroup>,
    pub(super) notify: Arc<Notify>,
}

pub(super) struct MemGroup {
    pub(super) last_delivered: u64,
    pub(super) pending: BTreeMap<u64, Pending>,
}

pub(super) struct Pending {
    pub(super) consumer: String,
    pub(super) delivered_at: Instant,
    pub(super) deliveries: u32,
}

impl MemStream {
    pub(super) fn new() -> MemStream {
        MemStream {
            next_seq: 1,
            buf: VecDeque::new(),
            groups: HashMap::new(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Drops the entries every group has been given and has acknowledged: in one process nobody
    /// else can read them, so memory follows the slowest consumer's backlog instead of
    /// `maxlen` (Redis keeps them, for groups other processes may create later).
    pub(super) fn trim_acknowledged(&mut self) {
        let Some(floor) = self
            .groups
            .values()
            .map(|g| match g.pending.keys().next() {
                Some(first) => (first - 1).min(g.last_delivered),
                None => g.last_delivered,
            })
            .min()
        else {
            return;
        };
        while self.buf.front().is_some_and(|(seq, ..)| *seq <= floor) {
            self.buf.pop_front();
        }
        if self.buf.capacity() > 1024 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len() * 2);
        }
    }
}

/// Index of `seq` in the ring buffer (ids are contiguous from the front).
pub(super) fn index_of(buf: &VecDeque<(u64, Vec<u8>, Instant)>, seq: u64) -> Option<usize> {
    let first = buf.front()?.0;
    let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
    (idx < buf.len()).then_some(idx)
}

pub(super) fn parse_seq(id: &str) -> Option<u64> {
    id.strip_suffix("-0")?.parse().ok()
}

impl MemoryStreams {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, MemStream>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn publish(&self, stream: &str, payload: &[u8]) -> String {
        self.publish_many(stream, std::slice::from_ref(&payload))
            .pop()
            .unwrap_or_default()
    }

    /// Appends the payloads under one lock and wakes the readers once.
    pub(super) fn publish_many<P: AsRef<[u8]>>(&self, stream: &str, payloads: &[P]) -> Vec<String> {
        let (ids, notify) = {
            let mut map = self.lock();
            let s = map.entry(stream.to_string()).or_insert_with(MemStream::new);
            let mut ids = Vec::with_capacity(payloads.len());
            let now = Instant::now();
            for payload in payloads {
                let seq = s.next_seq;
                s.next_seq += 1;
                s.buf.push_back((seq, payload.as_ref().to_vec(), now));
                ids.push(format!("{seq}-0"));
            }
            while s.buf.len() > self.maxlen {
                s.buf.pop_front();
            }
            (ids, s.notify.clone())
        };
        notify.notify_waiters();
        ids
    }

    pub(super) fn create_group(&self, stream: &str, group: &str, start: bool) {
        let mut map = self.lock();
        let s = map.entry(stream.to_string()).or_insert_with(MemStream::new);
        let last_delivered = if start { 0 } else { s.next_seq - 1 };
        s.groups.entry(group.to_string()).or_insert(MemGroup {
            last_delivered,
            pending: BTreeMap::new(),
        });
    }

    pub(super) fn skip_to_end(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        let mut map = self.lock();
        let Some(s) = map.get_mut(stream) else {
            return Err(super::no_group(stream, group));
        };
        let end = s.next_seq - 1;
        let Some(g) = s.groups.get_mut(group) else {
            return Err(super::no_group(stream, group));
        };
        g.last_delivered = end;
        s.trim_acknowledged();
        Ok(())
    }

    pub(super) fn destroy_group(&self, stream: &str, group: &str) {
        if let Some(s) = self.lock().get_mut(stream) {
            s.groups.remove(group);
        }
    }

    pub(super) async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let notify = {
                let map = self.lock();
                let s = map.get(stream).filter(|s| s.groups.contains_key(group));
                s.map(|s| s.notify.clone())
                    .ok_or_else(|| no_group(stream, group))?
            };
            // Register for wake-ups before looking, so a publish in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.try_read(stream, group, consumer, count, visibility)?;
            if !out.is_empty() || block.is_zero() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub(super) fn try_read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let now = Instant::now();
        let mut map = self.lock();
        let s = map.get_mut(stream).ok_or_else(|| no_group(stream, group))?;
        let g = s
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group(stream, group))?;
        let mut out = Vec::new();
        let due: Vec<u64> = g
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.delivered_at) >= visibility)
            .map(|(seq, _)| *seq)
            .take(count)
            .collect();
        for seq in due {
            let (Some(idx), Some(p)) = (index_of(&s.buf, seq), g.pending.get_mut(&seq)) else {
                g.pending.remove(&seq); // trimmed away: nothing left to deliver
                continue;
            };
            tracing::trace!(stream, group, seq, from = %p.consumer, to = consumer, "redeliver");
            p.consumer = consumer.to_string();
            p.delivered_at = now;
            p.deliveries = p.deliveries.saturating_add(1);
            out.push(Message {
                id: format!("{seq}-0"),
                payload: s.buf[idx].1.clone(),
                deliveries: p.deliveries,
            });
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let first = s.buf.front().map_or(0, |(seq, ..)| *seq);
        let skip = (g.last_delivered + 1).saturating_sub(first);
        let start = usize::try_from(skip).map_or(s.buf.len(), |i| i.min(s.buf.len()));
        for (seq, payload, _) in s.buf.range(start..).take(count) {
            g.last_delivered = *seq;
            g.pending.insert(
                *seq,
                Pending {
                    consumer: consumer.to_string(),
                    delivered_at: now,
                    deliveries: 1,
                },
            );
            out.push(Message {
                id: format!("{seq}-0"),
                payload: payload.clone(),
                deliveries: 1,
            });
        }
        Ok(out)
    }

    pub(super) fn ack(&self, stream: &str, group: &str, ids: &[String]) {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(stream) {
            if let Some(g) = s.groups.get_mut(group) {
                for seq in ids.iter().filter_map(|id| parse_seq(id)) {
                    g.pending.remove(&seq);
                }
            }
            s.trim_acknowledged();
        }
    }

    /// Drops the entries published more than `age` ago; answers how many.
    pub(super) fn trim_older(&self, stream: &str, age: Duration) -> u64 {
        let mut map = self.lock();
        let Some(s) = map.get_mut(stream) else {
            return 0;
        };
        let Some(cutoff) = Instant::now().checked_sub(age) else {
            return 0;
        };
        let mut n = 0;
        while s.buf.front().is_some_and(|(_, _, at)| *at < cutoff) {
            s.buf.pop_front();
            n += 1;
        }
        n
    }

    pub(super) fn len(&self, stream: &str) -> u64 {
        self.lock().get(stream).map_or(0, |s| s.buf.len() as u64)
    }

    pub(super) fn pending(&self, stream: &str, group: &str) -> Result<u64, BrokerError> {
        let map = self.lock();
        let g = map.get(stream).and_then(|s| s.groups.get(group));
        g.map(|g| g.pending.len() as u64)
            .ok_or_else(|| no_group(stream, group))
    }
}
