//! A process's output: one bounded ring shared by every subscriber.
//!
//! Readers of the child's pipes (or PTY) append chunks and never wait for anyone, so a slow
//! subscriber cannot block the process or the other subscribers. Each subscriber keeps its
//! own cursor (an output offset); one that falls more than the ring's capacity behind skips
//! ahead and sees the jump in `offset`. The same ring serves late joiners and reconnects.
//!
//! A *paced* output (asked for at start, for archives streamed out of the capsule) is the
//! exception: its readers wait while the furthest subscriber is a whole ring behind, so
//! nothing is lost. Pacing ends as soon as a subscriber goes away, so a process is never held
//! by a reader that is gone.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    Pty,
}

#[derive(Debug, Clone)]
pub struct Chunk {
    /// Output bytes produced before this chunk (all streams together).
    pub offset: u64,
    pub stream: Stream,
    pub data: Bytes,
}

#[derive(Debug)]
struct Ring {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    capacity: usize,
    /// Total bytes produced so far.
    end: u64,
    closed: bool,
}

/// Most chunks handed to a subscriber at once.
const BATCH: usize = 32;

#[derive(Debug)]
pub struct Output {
    ring: Mutex<Ring>,
    changed: watch::Sender<()>,
    paced: AtomicBool,
    /// The furthest any subscriber has read (paced outputs).
    read_to: AtomicU64,
    consumed: watch::Sender<()>,
}

impl Output {
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                chunks: VecDeque::new(),
                bytes: 0,
                capacity: capacity.max(1),
                end: 0,
                closed: false,
            }),
            changed: watch::Sender::new(()),
            paced: AtomicBool::new(false),
            read_to: AtomicU64::new(0),
            consumed: watch::Sender::new(()),
        }
    }

    /// Makes the output paced (see the module's documentation).
    pub fn paced(self, paced: bool) -> Self {
        self.paced.store(paced, Ordering::SeqCst);
        self
    }

    /// Waits, for a paced output, until `len` more bytes fit in the ring without pushing out
    /// anything the furthest subscriber has not read.
    pub async fn room(&self, len: usize) {
        if !self.paced.load(Ordering::SeqCst) {
            return; // the usual case: never wait
        }
        let mut consumed = self.consumed.subscribe();
        loop {
            consumed.borrow_and_update();
            if !self.paced.load(Ordering::SeqCst) {
                return;
            }
            let (end, capacity) = {
                let ring = self.ring();
                (ring.end, ring.capacity as u64)
            };
            let unread = end.saturating_sub(self.read_to.load(Ordering::SeqCst));
            if unread == 0 || unread + len as u64 <= capacity {
                return;
            }
            if consumed.changed().await.is_err() {
                return;
            }
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, stream: Stream, data: Bytes) {
        if data.is_empty() {
            return;
        }
        {
            let mut ring = self.ring();
            let offset = ring.end;
            ring.end += data.len() as u64;
            ring.bytes += data.len();
            ring.chunks.push_back(Chunk {
                offset,
                stream,
                data,
            });
            while ring.bytes > ring.capacity && ring.chunks.len() > 1 {
                let old = ring.chunks.pop_front().expect("non-empty");
                ring.bytes -= old.data.len();
            }
        }
        self.changed.send_replace(());
    }

    /// No more output will come.
    pub fn close(&self) {
        self.ring().closed = true;
        self.changed.send_replace(());
    }

    /// Total output bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.ring().end
    }

    /// A cursor starting at `from` (clamped to what is still buffered), or at the current end.
    pub fn subscribe(&self, from: Option<u64>) -> Subscription<'_> {
        let cursor = {
            let ring = self.ring();
            from.map_or(ring.end, |f| f.min(ring.end))
        };
        Subscription {
            output: self,
            cursor,
            changed: self.changed.subscribe(),
        }
    }
}

pub struct Subscription<'a> {
    output: &'a Output,
    cursor: u64,
    changed: watch::Receiver<()>,
}

impl Subscription<'_> {
    /// The next chunks after the cursor; `None` once the output is closed and fully read.
    pub async fn next(&mut self) -> Option<Vec<Chunk>> {
        loop {
            self.changed.borrow_and_update();
            {
                let ring = self.output.ring();
                let batch: Vec<Chunk> = ring
                    .chunks
                    .iter()
                    .filter(|c| c.offset + c.data.len() as u64 > self.cursor)
                    .take(BATCH)
                    .map(|c| {
                        if c.offset >= self.cursor {
                            c.clone()
                        } else {
                            let skip = (self.cursor - c.offset) as usize;
                            Chunk {
                                offset: self.cursor,
                                stream: c.stream,
                                data: c.data.slice(skip..),
                            }
                        }
                    })
                    .collect();
                if let Some(last) = batch.last() {
                    self.cursor = last.offset + last.data.len() as u64;
                    self.output.read_to.fetch_max(self.cursor, Ordering::SeqCst);
                    self.output.consumed.send_replace(());
                    return Some(batch);
                }
                if ring.closed {
                    return None;
                }
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        // A reader that goes away never holds the process.
        if self.output.paced.swap(false, Ordering::SeqCst) {
            self.output.consumed.send_replace(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn late_joiner_resumes_and_laggard_skips() {
        let out = Output::new(8);
        out.push(Stream::Stdout, Bytes::from_static(b"abcd"));
        let mut live = out.subscribe(None);
        let mut replay = out.subscribe(Some(2));
        out.push(Stream::Stderr, Bytes::from_static(b"efgh"));
        let got = replay.next().await.unwrap();
        assert_eq!(got[0].data, Bytes::from_static(b"cd"));
        assert_eq!(got[0].offset, 2);
        assert_eq!(got[1].stream, Stream::Stderr);
        let got = live.next().await.unwrap();
        assert_eq!((got.len(), got[0].offset), (1, 4));

        let mut slow = out.subscribe(Some(0));
        out.push(Stream::Stdout, Bytes::from_static(b"ijklmnop"));
        let got = slow.next().await.unwrap();
        assert_eq!(got[0].offset, 8, "the ring only keeps 8 bytes");
        out.close();
        assert!(slow.next().await.is_none());
        assert_eq!(out.produced(), 16);
    }

    #[tokio::test]
    async fn a_paced_output_waits_for_its_reader_and_stops_waiting_when_it_goes() {
        let out = std::sync::Arc::new(Output::new(8).paced(true));
        out.room(6).await; // nothing unread: room
        out.push(Stream::Stdout, Bytes::from_static(b"abcdef"));
        // Two more bytes fit; three would push out unread output.
        out.room(2).await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), out.room(3));
        assert!(waiting.await.is_err());
        out.push(Stream::Stdout, Bytes::from_static(b"gh"));
        let mut reader = out.subscribe(Some(0));
        let got: Vec<u8> = reader
            .next()
            .await
            .unwrap()
            .iter()
            .flat_map(|c| c.data.to_vec())
            .collect();
        assert_eq!(got, b"abcdefgh", "nothing was pushed out unread");
        out.room(8).await; // read: room again
        out.push(Stream::Stdout, Bytes::from_static(b"ijklmnop"));
        let writer = {
            let out = out.clone();
            tokio::spawn(async move { out.room(1).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!writer.is_finished());
        drop(reader);
        writer.await.unwrap();
        // Nothing was skipped while paced.
        let mut again = out.subscribe(Some(8));
        assert_eq!(again.next().await.unwrap()[0].offset, 8);
    }
}
