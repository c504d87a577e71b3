//! Per-capsule metric rings: 10 min at 0.5 s, 2 h at 30 s, 24 h at 5 min.
//!
//! The sampler pushes one raw point every 0.5 s into the fine ring; coarser rings get the
//! average of the fine points of their interval. Points not yet handed to the control
//! plane are also queued for [`Rings::flush`].

use std::collections::VecDeque;

/// One sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    pub timestamp_unix: i64,
    pub cpu_pct: f64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
}

/// Sampling period of the fine ring, in milliseconds.
pub const SAMPLE_MS: u64 = 500;

struct Ring {
    every: usize,
    capacity: usize,
    points: VecDeque<Point>,
    pending: Vec<Point>,
}

impl Ring {
    fn new(every: usize, capacity: usize) -> Self {
        Ring {
            every,
            capacity,
            points: VecDeque::with_capacity(capacity.min(1200)),
            pending: Vec::new(),
        }
    }

    fn push(&mut self, p: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }
}

/// The three rings of one capsule.
pub struct Rings {
    tiers: [Ring; 3],
    seen: usize,
    unflushed: Vec<Point>,
}

impl Default for Rings {
    fn default() -> Self {
        Self::new()
    }
}

impl Rings {
    pub fn new() -> Self {
        Rings {
            // 0.5 s x 1200 = 10 min; 30 s x 240 = 2 h; 5 min x 288 = 24 h.
            tiers: [Ring::new(1, 1200), Ring::new(60, 240), Ring::new(600, 288)],
            seen: 0,
            unflushed: Vec::new(),
        }
    }

    pub fn record(&mut self, p: Point) {
        self.seen += 1;
        self.unflushed.push(p);
        if self.unflushed.len() > 1200 {
            self.unflushed.remove(0);
        }
        for ring in &mut self.tiers {
            if ring.every == 1 {
                ring.push(p);
                continue;
            }
            ring.pending.push(p);
            if self.seen.is_multiple_of(ring.every) {
                let avg = average(&ring.pending);
                ring.pending.clear();
                ring.push(avg);
            }
        }
    }

    /// Points covering `range` ("5m", "10m", "1h", "2h", "6h", "24h") from the finest ring
    /// that spans it. None for an unknown range.
    pub fn range(&self, range: &str, now_unix: i64) -> Option<Vec<Point>> {
        let (secs, tier) = match range {
            "5m" => (300, 0),
            "10m" => (600, 0),
            "1h" => (3600, 1),
            "2h" => (7200, 1),
            "6h" => (21600, 2),
            "24h" => (86400, 2),
            _ => return None,
        };
        let since = now_unix - secs;
        Some(
            self.tiers[tier]
                .points
                .iter()
                .filter(|p| p.timestamp_unix >= since)
                .copied()
                .collect(),
        )
    }

    /// Points recorded since the previous flush (at most the last 10 minutes).
    pub fn flush(&mut self) -> Vec<Point> {
        std::mem::take(&mut self.unflushed)
    }
}

fn average(points: &[Point]) -> Point {
    let n = points.len().max(1) as f64;
    Point {
        timestamp_unix: points.last().map(|p| p.timestamp_unix).unwrap_or_default(),
        cpu_pct: points.iter().map(|p| p.cpu_pct).sum::<f64>() / n,
        mem_bytes: (points.iter().map(|p| p.mem_bytes as f64).sum::<f64>() / n) as u64,
        disk_bytes: (points.iter().map(|p| p.disk_bytes as f64).sum::<f64>() / n) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t: i64, cpu: f64) -> Point {
        Point {
            timestamp_unix: t,
            cpu_pct: cpu,
            mem_bytes: 100,
            disk_bytes: 0,
        }
    }

    #[test]
    fn fine_ring_keeps_ten_minutes() {
        let mut r = Rings::new();
        for i in 0..1500 {
            r.record(pt(i / 2, 1.0));
        }
        assert_eq!(r.tiers[0].points.len(), 1200);
        assert_eq!(r.tiers[1].points.len(), 25);
        assert_eq!(r.tiers[2].points.len(), 2);
    }

    #[test]
    fn coarse_points_are_averages() {
        let mut r = Rings::new();
        for i in 0..60 {
            r.record(pt(i, if i < 30 { 0.0 } else { 100.0 }));
        }
        assert_eq!(r.tiers[1].points[0].cpu_pct, 50.0);
        assert_eq!(r.tiers[1].points[0].timestamp_unix, 59);
    }

    #[test]
    fn range_filters_by_time_and_flush_drains() {
        let mut r = Rings::new();
        for i in 0..1000 {
            r.record(pt(i, 1.0));
        }
        assert_eq!(r.range("5m", 999).unwrap().len(), 301);
        assert!(r.range("7m", 999).is_none());
        assert_eq!(r.flush().len(), 1000);
        assert!(r.flush().is_empty());
    }
}
