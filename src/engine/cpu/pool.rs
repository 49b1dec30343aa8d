//! A small spinning thread pool for the decoder's many tiny parallel loops.
//!
//! Decoding one token of a small model runs ~200 matrix-vector products of a few
//! microseconds each. A general work-stealing pool parks and wakes threads around each
//! one, and that scheduling (sched_yield, futex wake-ups) cost as much as the arithmetic.
//! Here workers spin briefly on a generation counter between jobs, then park, so
//! back-to-back jobs start within nanoseconds and an idle engine sleeps.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(300);

struct Job {
    /// Erased `&(dyn Fn(usize) + Sync)`; valid while `run` waits for `done == n`.
    f: *const (dyn Fn(usize) + Sync),
    n: usize,
    next: AtomicUsize,
    done: AtomicUsize,
}

// SAFETY: `f` points to a `Sync` closure, called only while its owner waits in `run`.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Claims and runs tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= self.n {
                return;
            }
            // SAFETY: i < n, so `run` has not returned and the closure is alive.
            unsafe { (*self.f)(i) };
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }
}

struct Shared {
    generation: AtomicUsize,
    slot: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    stop: AtomicBool,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    /// One job at a time: callers on different threads take turns.
    gate: Mutex<()>,
}

impl Pool {
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared { generation: AtomicUsize::new(0), slot: Mutex::new(None), wake: Condvar::new(), stop: AtomicBool::new(false) });
        for w in 1..threads {
            let s = shared.clone();
            std::thread::Builder::new().name(format!("longwriter-cpu-{w}")).spawn(move || worker(s)).expect("spawn worker");
        }
        Self { shared, threads, gate: Mutex::new(()) }
    }

    /// The process-wide pool, sized by `--threads` (`RAYON_NUM_THREADS`) or the core count.
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let n = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            Pool::new(n)
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(0..n)` across the pool and returns when every call has finished.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if n == 0 {
            return;
        }
        if self.threads == 1 || n == 1 {
            (0..n).for_each(f);
            return;
        }
        let _turn = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the lifetime is erased only for the duration of this call (see Job).
        let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f) };
        let job = Arc::new(Job { f, n, next: AtomicUsize::new(0), done: AtomicUsize::new(0) });
        {
            let mut slot = self.shared.slot.lock().unwrap();
            *slot = Some(job.clone());
            self.shared.generation.fetch_add(1, Ordering::Release);
        }
        self.shared.wake.notify_all();
        job.work();
        while job.done.load(Ordering::Acquire) < n {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_all();
    }
}

fn worker(s: Arc<Shared>) {
    let mut seen = s.generation.load(Ordering::Acquire);
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins % 1024 == 0 && start.elapsed() > SPIN {
                let g = s.slot.lock().unwrap();
                if s.generation.load(Ordering::Acquire) == seen {
                    let _g = s.wake.wait_timeout(g, Duration::from_millis(100)).unwrap();
                }
            }
        }
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        seen = s.generation.load(Ordering::Acquire);
        let job = s.slot.lock().unwrap().clone();
        if let Some(job) = job {
            job.work();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_exactly_once() {
        let pool = Pool::new(3);
        for n in [1usize, 2, 7, 100, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..20 {
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 20), "n={n}");
        }
    }

    #[test]
    fn concurrent_callers_take_turns() {
        let pool = Arc::new(Pool::new(2));
        let total = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (p, t) = (pool.clone(), total.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        p.run(10, &|_| {
                            t.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(total.load(Ordering::Relaxed), 4 * 50 * 10);
    }
}
