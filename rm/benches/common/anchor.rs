//! The physical anchors every CoW-fault figure is compared with, measured by the same method
//! in the same process: each operation is timed alone (an `Instant` on each side), and every
//! page it reads or writes is evicted from the CPU caches first (`clflush` of each line,
//! untimed), so "cold" means from DRAM whatever the size of the last-level cache (260 MiB on
//! the development machine: streaming a buffer through it evicts nothing).
//!
//! * [`Memcpy`]: a 4 KiB memcpy (`copy_nonoverlapping`) between two cold pages: the copy a CoW fault cannot
//!   avoid (the physical limit). [`Memcpy::run`] stops the clock when the copy's instructions
//!   are done, its stores possibly still in the CPU's store buffer; [`Memcpy::run_complete`]
//!   stops it after a full fence ([`complete`]), when they have reached the caches, as they must
//!   before a fault can resume the vCPU (the DSB that break-before-make needs waits for them;
//!   on the host every locked instruction after the copy does).
//! * [`FileCow`]: Linux's own copy-on-write write fault: a page of a `MAP_PRIVATE` mapping of a
//!   file is read (mapping the page-cache page read-only), evicted from the caches, then
//!   written: the kernel allocates a page, copies 4 KiB and maps it.
//! * [`ForkCow`]: the same after `fork`: a written anonymous page shared with a child, written
//!   again by the parent.
//! * [`FirstTouch`]: the first write to an anonymous page (a zero-fill fault, no copy).
//!
//! Transparent huge pages are turned off for these mappings (`MADV_NOHUGEPAGE`), so every fault
//! is a 4 KiB one. Linux only (the benches run on the development host).

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

pub const PAGE: usize = 4096;

/// A full fence: every earlier load and store is complete (globally visible) before any later
/// one (`mfence`; `dsb sy` on aarch64). The end of each timed region of a copy that counts its
/// completion, and of every CoW fault's.
#[inline(always)]
pub fn complete() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a fence has no memory-safety precondition.
    unsafe {
        core::arch::x86_64::_mm_mfence()
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier has no memory-safety precondition.
    unsafe {
        core::arch::asm!("dsb sy")
    };
}

/// Evict `[p, p + len)` from every CPU cache level (to DRAM).
pub fn evict(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        for off in (0..len).step_by(64) {
            // SAFETY: `clflush` needs only a mapped address; callers pass memory they can read.
            unsafe { core::arch::x86_64::_mm_clflush(p.wrapping_add(off)) };
        }
        // SAFETY: a fence has no memory-safety precondition.
        unsafe { core::arch::x86_64::_mm_mfence() };
    }
    #[cfg(target_arch = "aarch64")]
    {
        for off in (0..len).step_by(64) {
            // SAFETY: `dc civac` needs only a mapped address; callers pass memory they can read.
            unsafe { core::arch::asm!("dc civac, {}", in(reg) p.wrapping_add(off)) };
        }
        // SAFETY: a barrier has no memory-safety precondition.
        unsafe { core::arch::asm!("dsb sy") };
    }
}

/// Minor page faults this process has taken so far.
pub fn host_page_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt
}

/// The cost of an empty timed region (two `Instant::now`): part of every figure here.
pub fn timer_overhead(iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        total += black_box(t).elapsed();
    }
    total
}

/// An anonymous private mapping of `pages` pages, without huge pages.
struct Anon {
    p: *mut u8,
    len: usize,
}

impl Anon {
    fn new(pages: usize) -> Anon {
        let len = pages * PAGE;
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {len} bytes");
        // SAFETY: advice on the mapping just made.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        Anon { p: p.cast(), len }
    }
    fn page(&self, i: usize) -> *mut u8 {
        assert!((i + 1) * PAGE <= self.len);
        self.p.wrapping_add(i * PAGE)
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no reference into it outlives `self`.
        unsafe { libc::munmap(self.p.cast(), self.len) };
    }
}

/// Write one byte through a raw pointer (the faulting store).
fn store(p: *mut u8, v: u8) {
    // SAFETY: callers pass a pointer into a live writable mapping of theirs.
    unsafe { std::ptr::write_volatile(p, v) }
}

fn load(p: *const u8) -> u8 {
    // SAFETY: callers pass a pointer into a live readable mapping of theirs.
    unsafe { std::ptr::read_volatile(p) }
}

/// 4 KiB memcpy between two cold pages: random source page of a 256 MiB buffer, next
/// destination page of another.
///
/// Both buffers are kept out of the children [`ForkCow`] forks (`MADV_DONTFORK`): a `fork`
/// write-protects every private page of the parent, so the first write to each destination
/// page after the fork anchor took a host page fault inside the timed copy (the "memcpy next"
/// of the first cases read ~1.8 us instead of ~0.7 us until the destination index had gone once
/// round the whole buffer).
pub struct Memcpy {
    src: Anon,
    dst: Anon,
    x: u64,
    d: usize,
}

impl Default for Memcpy {
    fn default() -> Self {
        Self::new()
    }
}

impl Memcpy {
    pub fn new() -> Memcpy {
        const PAGES: usize = (256 << 20) / PAGE;
        let (src, dst) = (Anon::new(PAGES), Anon::new(PAGES));
        for b in [&src, &dst] {
            // SAFETY: advice on a mapping of ours; the children of `fork` do not use it.
            let r = unsafe { libc::madvise(b.p.cast(), b.len, libc::MADV_DONTFORK) };
            assert_eq!(r, 0, "madvise(MADV_DONTFORK)");
        }
        // Written, so neither buffer faults in the timed loop.
        for i in 0..PAGES {
            // SAFETY: whole pages inside the mappings just made.
            unsafe {
                std::ptr::write_bytes(src.page(i), 0x5a, PAGE);
                std::ptr::write_bytes(dst.page(i), 1, PAGE);
            }
        }
        Memcpy {
            src,
            dst,
            x: 0x9e37_79b9_7f4a_7c15,
            d: 0,
        }
    }
    /// Time `iters` copies, each up to the end of its instructions.
    pub fn run(&mut self, iters: u64) -> Duration {
        self.run_with(iters, false)
    }
    /// Time `iters` copies, each up to its stores' completion (a full fence, [`complete`]).
    pub fn run_complete(&mut self, iters: u64) -> Duration {
        self.run_with(iters, true)
    }
    fn run_with(&mut self, iters: u64, fenced: bool) -> Duration {
        let pages = self.src.len / PAGE;
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.x = self
                .x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = self.src.page((self.x >> 33) as usize % pages);
            let d = self.dst.page(self.d);
            self.d = (self.d + 1) % pages;
            evict(s, PAGE);
            evict(d, PAGE);
            let t = Instant::now();
            // SAFETY: two whole pages of distinct live mappings of ours.
            unsafe { std::ptr::copy_nonoverlapping(black_box(s.cast_const()), d, PAGE) };
            if fenced {
                complete();
            }
            total += t.elapsed();
        }
        black_box(self.dst.p);
        total
    }
}

/// Pages in each round of the Linux anchors (64 MiB); a new round maps them afresh, untimed.
const ROUND: usize = 16384;

/// Linux's CoW write fault on a `MAP_PRIVATE` file mapping.
pub struct FileCow {
    file: File,
    path: std::path::PathBuf,
    map: Option<FileMap>,
    next: usize,
}

struct FileMap {
    p: *mut u8,
}

impl FileCow {
    pub fn new() -> FileCow {
        let path = std::env::temp_dir().join(format!("gunyah-rm-anchor-{}", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        // Real data on every page (a hole would map the shared zero page instead).
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8 + 1).collect();
        for _ in 0..ROUND * PAGE / chunk.len() {
            file.write_all(&chunk).unwrap();
        }
        file.sync_all().unwrap();
        FileCow {
            file,
            path,
            map: None,
            next: ROUND,
        }
    }

    fn remap(&mut self) {
        if let Some(m) = self.map.take() {
            // SAFETY: the mapping `remap` made last time; no reference into it remains.
            unsafe { libc::munmap(m.p.cast(), ROUND * PAGE) };
        }
        // SAFETY: a fresh private mapping of our own file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ROUND * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                self.file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: advice on the mapping just made.
        unsafe { libc::madvise(p, ROUND * PAGE, libc::MADV_NOHUGEPAGE) };
        self.map = Some(FileMap { p: p.cast() });
        self.next = 0;
    }

    pub fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.next == ROUND {
                self.remap();
            }
            let p = self.map.as_ref().unwrap().p.wrapping_add(self.next * PAGE);
            self.next += 1;
            // Read first: the page-cache page is mapped read-only.
            black_box(load(p));
            evict(p, PAGE);
            let t = Instant::now();
            store(p, 0xee);
            total += t.elapsed();
        }
        total
    }
}

impl Default for FileCow {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FileCow {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            // SAFETY: as in `remap`.
            unsafe { libc::munmap(m.p.cast(), ROUND * PAGE) };
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Linux's CoW write fault after `fork`: the parent writes pages it shares with a child that
/// waits (blocked on a pipe) until the round ends.
pub struct ForkCow {
    round: Option<(Anon, libc::pid_t, i32)>,
    next: usize,
}

impl Default for ForkCow {
    fn default() -> Self {
        Self::new()
    }
}

impl ForkCow {
    pub fn new() -> ForkCow {
        ForkCow {
            round: None,
            next: ROUND,
        }
    }

    fn end_round(&mut self) {
        if let Some((_, pid, w)) = self.round.take() {
            // SAFETY: closing our own pipe end and reaping our own child.
            unsafe {
                libc::close(w);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }

    fn new_round(&mut self) {
        self.end_round();
        let a = Anon::new(ROUND);
        for i in 0..ROUND {
            store(a.page(i), i as u8 | 1);
        }
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls async-signal-safe functions (read, _exit).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: async-signal-safe calls on our own descriptors.
            unsafe {
                libc::close(fds[1]);
                while libc::read(fds[0], (&mut b as *mut u8).cast(), 1) > 0 {}
                libc::_exit(0);
            }
        }
        // SAFETY: closing the read end the parent does not use.
        unsafe { libc::close(fds[0]) };
        self.round = Some((a, pid, fds[1]));
        self.next = 0;
    }

    pub fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.next == ROUND {
                self.new_round();
            }
            let p = self.round.as_ref().unwrap().0.page(self.next);
            self.next += 1;
            evict(p, PAGE);
            let t = Instant::now();
            store(p, 0xee);
            total += t.elapsed();
        }
        total
    }
}

impl Drop for ForkCow {
    fn drop(&mut self) {
        self.end_round();
    }
}

/// The first write to an anonymous page (zero-fill fault).
pub struct FirstTouch {
    map: Option<Anon>,
    next: usize,
}

impl Default for FirstTouch {
    fn default() -> Self {
        Self::new()
    }
}

impl FirstTouch {
    pub fn new() -> FirstTouch {
        FirstTouch {
            map: None,
            next: ROUND,
        }
    }
    pub fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.next == ROUND {
                self.map = Some(Anon::new(ROUND));
                self.next = 0;
            }
            let p = self.map.as_ref().unwrap().page(self.next);
            self.next += 1;
            let t = Instant::now();
            store(p, 0xee);
            total += t.elapsed();
        }
        total
    }
}
