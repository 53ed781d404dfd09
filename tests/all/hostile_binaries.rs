//! Hostile binaries: byte-level mutations of real components (flipped bytes, truncations,
//! spliced garbage) each end in a clear 4xx or a typed outcome, never a 500 or a dead server.
//! Deterministic (a fixed-seed generator), so a failure names a reproducible case.

use crate::fixtures::{self, V0_0_1};
use crate::support::{example_hello, spawn_server_with};

/// xorshift64*: small, deterministic, good enough to pick mutation sites.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        2 => {
            let at = rng.below(bytes.len());
            let garbage: Vec<u8> = (0..rng.below(64) + 1).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, garbage);
        }
        _ => {
            let at = rng.below(bytes.len());
            let len = rng.below(bytes.len() - at).min(256);
            bytes.drain(at..at + len);
        }
    }
    bytes
}

const KNOWN_CODES: [&str; 5] = [
    "empty_body",
    "invalid_component",
    "incompatible_world",
    "precompiled_rejected",
    "wrong_world",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_components_never_crash_the_server() {
    let server = spawn_server_with(|config| config.limits.timeout_ms = 200).await;
    let seeds = [
        fixtures::hello(V0_0_1),
        fixtures::guest_error(),
        fixtures::echo_transformer(),
        example_hello(),
    ];
    let mut rng = Rng(0x5eed_0f3a_7de2);
    let (mut rejected, mut ran) = (0, 0);
    for case in 0..240 {
        let seed = &seeds[case % seeds.len()];
        let body = mutate(&mut rng, seed);
        let reply = server.run(body, "").await;
        match reply.status.as_u16() {
            200 => {
                ran += 1;
                assert!(
                    reply.json["outcome"].is_string(),
                    "case {case}: {}",
                    reply.json
                );
            }
            400 | 422 => {
                rejected += 1;
                assert!(
                    KNOWN_CODES.contains(&reply.error_code()),
                    "case {case}: {}",
                    reply.json
                );
            }
            status => panic!("case {case}: unexpected status {status}: {}", reply.json),
        }
    }
    eprintln!("240 mutated components: {rejected} rejected, {ran} ran to a typed outcome");
    assert!(rejected > 0);
    // Still serving.
    assert_eq!(
        server.run(fixtures::hello(V0_0_1), "").await.outcome(),
        "ok"
    );
}
