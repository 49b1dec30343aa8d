//! A small spinning thread pool for the decoder's many tiny parallel loops.
//!
//! Decoding one token of a small model runs ~200 matrix-vector products of a few
//! microseconds each. A general work-stealing pool parks and wakes threads around each
//! one, and that scheduling (sched_yield, futex wake-ups) cost as much as the arithmetic.
//! Here workers spin briefly on a generation counter between jobs, then park, so
//! back-to-back jobs start within nanoseconds and an idle engine sleeps.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
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
    /// The first task's panic, re-raised on the caller once every task has finished.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `f` points to a `Sync` closure, called only while its owner waits in `run`.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Claims and runs tasks until none are left. A panicking task still counts as done
    /// (its payload is kept), so neither a worker nor the caller can stop the count short:
    /// the caller would otherwise spin forever, or return while workers still call `f`.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= self.n {
                return;
            }
            // SAFETY: i < n and `done` has not reached n, so `run` is still waiting and
            // the closure is alive.
            let f = unsafe { &*self.f };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(i))) {
                let mut first = self.panic.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(payload);
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Spins until every task has finished.
    fn wait(&self) {
        while self.done.load(Ordering::Acquire) < self.n {
            std::hint::spin_loop();
        }
    }
}

/// Waits for every task of a job when `run` leaves, by return or by unwinding, so no
/// worker can call the borrowed closure after its frame is gone.
struct WaitOnDrop<'a>(&'a Job);

impl Drop for WaitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.wait();
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
            // The generation is read here, not when the thread starts: a job submitted
            // before a worker gets to run must still look new to it.
            let seen = s.generation.load(Ordering::Acquire);
            std::thread::Builder::new().name(format!("longwriter-cpu-{w}")).spawn(move || worker(s, seen)).expect("spawn worker");
        }
        Self { shared, threads, gate: Mutex::new(()) }
    }

    /// The process-wide pool, sized by [`configured_threads`].
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool::new(configured_threads()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(0..n)` across the pool and returns when every call has finished. If any
    /// call panics, the rest still run, and the first panic is re-raised here afterwards.
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
        let job = Arc::new(Job { f, n, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panic: Mutex::new(None) });
        let guard = WaitOnDrop(&job);
        {
            let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some(job.clone());
            self.shared.generation.fetch_add(1, Ordering::Release);
        }
        self.shared.wake.notify_all();
        job.work();
        drop(guard);
        let payload = job.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }

    /// Runs `f(i, chunk_i)` over the `size`-long chunks of `data` (the last may be
    /// shorter) across the pool: the elementwise passes between matmuls (activation
    /// quantizing, the FFN's gate), which one thread ran while the others spun.
    pub fn chunks_mut<T: Send>(&self, data: &mut [T], size: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
        struct Base<T>(*mut T);
        // SAFETY: tasks take disjoint chunks, and `run` joins them all before returning.
        unsafe impl<T: Send> Sync for Base<T> {}
        impl<T> Base<T> {
            fn at(&self, i: usize) -> *mut T {
                // SAFETY: callers stay inside `data`.
                unsafe { self.0.add(i) }
            }
        }
        let (len, size) = (data.len(), size.max(1));
        let base = Base(data.as_mut_ptr());
        self.run(len.div_ceil(size), &|i| {
            let start = i * size;
            // SAFETY: chunk i is data[start..start + size] cut at the end: no other task's.
            let chunk = unsafe { std::slice::from_raw_parts_mut(base.at(start), size.min(len - start)) };
            f(i, chunk)
        });
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_all();
    }
}

/// The threads the engines use: `--threads`, or the core count. `--threads` travels as
/// `RAYON_NUM_THREADS` because candle's own CPU ops read that variable too.
pub fn configured_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn worker(s: Arc<Shared>, mut seen: usize) {
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while s.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins % 1024 == 0 && start.elapsed() > SPIN {
                let g = s.slot.lock().unwrap_or_else(|p| p.into_inner());
                if s.generation.load(Ordering::Acquire) == seen {
                    drop(s.wake.wait_timeout(g, Duration::from_millis(100)));
                }
            }
        }
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        seen = s.generation.load(Ordering::Acquire);
        let job = s.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(job) = job {
            job.work();
        }
    }
}

/// Disjoint output writes from pool tasks.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every task writes a distinct set of indices, and `Pool::run` joins them all.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Pointer to element `i` (a method, so closures capture the whole Sync wrapper).
    pub(super) fn at(self, i: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer this was made from.
        unsafe { self.0.add(i) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_slice_once_each_the_last_one_short() {
        let pool = Pool::new(3);
        let mut v = vec![0u32; 1001];
        pool.chunks_mut(&mut v, 64, &|i, c| {
            assert!(c.len() == 64 || (i == 15 && c.len() == 41));
            for (k, x) in c.iter_mut().enumerate() {
                *x += (i * 64 + k) as u32 + 1;
            }
        });
        assert!(v.iter().enumerate().all(|(k, &x)| x == k as u32 + 1));
    }

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

    /// One index panics, on the calling thread or on a worker. Either way every other
    /// index still runs exactly once, the panic reaches the caller only after all of them
    /// finished, and the pool keeps working afterwards.
    fn one_index_panics(worker_side: bool) {
        let pool = Pool::new(3);
        let n = 64;
        let caller = std::thread::current().id();
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let panicked_on = Mutex::new(None);
        let finished = AtomicUsize::new(0);
        // Each side's first task waits (boundedly) until the other side has started one,
        // so both the caller and a worker run tasks however the threads are scheduled.
        let (caller_in, worker_in) = (AtomicBool::new(false), AtomicBool::new(false));
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.run(n, &|i| {
                let on_caller = std::thread::current().id() == caller;
                let (mine, other) = if on_caller { (&caller_in, &worker_in) } else { (&worker_in, &caller_in) };
                if !mine.swap(true, Ordering::SeqCst) {
                    let t = Instant::now();
                    while !other.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(10) {
                        std::thread::yield_now();
                    }
                }
                let mut who = panicked_on.lock().unwrap();
                if who.is_none() && on_caller != worker_side {
                    *who = Some(i);
                    drop(who);
                    panic!("task {i} fails");
                }
                drop(who);
                // Slow tasks: without the wait, `run` would return while these still run.
                std::thread::sleep(Duration::from_micros(200));
                hits[i].fetch_add(1, Ordering::SeqCst);
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }));
        assert!(caller_in.load(Ordering::SeqCst) && worker_in.load(Ordering::SeqCst), "both the caller and a worker ran tasks");
        let bad = panicked_on.lock().unwrap().expect("a task panicked");
        let msg = result.expect_err("the panic reaches the caller");
        assert_eq!(msg.downcast_ref::<String>().map(String::as_str), Some(format!("task {bad} fails").as_str()));
        // Read right after `run` unwound: every other task had already finished.
        assert_eq!(finished.load(Ordering::SeqCst), n - 1);
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(h.load(Ordering::SeqCst), usize::from(i != bad), "index {i}");
        }
        let again = AtomicUsize::new(0);
        pool.run(n, &|_| {
            again.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(again.load(Ordering::SeqCst), n);
    }

    #[test]
    fn a_panic_on_the_caller_waits_for_the_workers_then_reaches_the_caller() {
        one_index_panics(false);
    }

    #[test]
    fn a_panic_on_a_worker_reaches_the_caller_instead_of_hanging_it() {
        one_index_panics(true);
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
