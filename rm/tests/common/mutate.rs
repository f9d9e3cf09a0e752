//! Deterministic randomness and malformed-input drivers shared by the tests.
//!
//! Each driver feeds a request template (message ID, well-formed payload) to `try_one`, which
//! sends it to a fresh world and checks that the RM answered without panicking or changing
//! state on failure; the drivers only decide which bytes are sent.

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One element of `v` (not empty).
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Every template cut at every shorter length, from each caller, each caller in a fresh world.
pub fn truncated<W>(
    templates: &[(u32, Vec<u8>)],
    callers: [u16; 2],
    mut world: impl FnMut() -> W,
    mut try_one: impl FnMut(&mut W, u16, u32, &[u8]),
) {
    for (id, body) in templates {
        for from in callers {
            let mut w = world();
            for len in 0..body.len() {
                try_one(&mut w, from, *id, &body[..len]);
            }
        }
    }
}

/// `rounds` copies of each template with one bit flipped, from a caller picked at random.
pub fn flipped<W>(
    rng: &mut Rng,
    rounds: usize,
    templates: &[(u32, Vec<u8>)],
    callers: [u16; 2],
    mut world: impl FnMut() -> W,
    mut try_one: impl FnMut(&mut W, u16, u32, &[u8]),
) {
    for (id, body) in templates {
        let mut w = world();
        for _ in 0..rounds {
            let mut b = body.clone();
            if !b.is_empty() {
                let i = (rng.next() % b.len() as u64) as usize;
                b[i] ^= 1 << (rng.next() % 8);
            }
            let from = if rng.next().is_multiple_of(2) {
                callers[0]
            } else {
                callers[1]
            };
            try_one(&mut w, from, *id, &b);
        }
    }
}

/// `rounds` random payloads of fewer than `max_len` bytes under each template's message ID.
pub fn random<W>(
    rng: &mut Rng,
    rounds: usize,
    max_len: u64,
    templates: &[(u32, Vec<u8>)],
    callers: [u16; 2],
    mut world: impl FnMut() -> W,
    mut try_one: impl FnMut(&mut W, u16, u32, &[u8]),
) {
    for (id, _) in templates {
        let mut w = world();
        for _ in 0..rounds {
            let len = (rng.next() % max_len) as usize;
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let from = if rng.next().is_multiple_of(2) {
                callers[0]
            } else {
                callers[1]
            };
            try_one(&mut w, from, *id, &b);
        }
    }
}
