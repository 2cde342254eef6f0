//! P-256 verifications per second on one core: `p256`'s generic verifier against the fixed-key
//! verifier, one signature at a time and in batches sharing one inversion; and the same for P-192
//! (SKAdNetwork 1.0 and 2.0), `p192`'s verifier against its fixed-key tables.
//!
//! Run: `cargo bench --bench ecdsa`. Prints `key=value` lines that `bench/run.sh` tabulates.
//! Each figure is the best of three runs of at least a second over 1,024 distinct signatures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use p256::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use p256::ecdsa::{Signature, SigningKey};
use sha2::Digest as _;
use skan_receiver::skan::{FixedKeyVerifier, FixedKeyVerifierP192};

const SIGNATURES: usize = 1024;
const BATCH: usize = 64;

/// Verifications per second: best of three runs, each at least a second long.
fn rate(mut round: impl FnMut() -> usize) -> f64 {
    let mut best = 0.0_f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut done = 0;
        while start.elapsed() < Duration::from_secs(1) {
            done += round();
        }
        best = best.max(done as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// [`rate`] of verifying every case one at a time with `verify`, which must accept each.
fn rate_over<S>(cases: &[([u8; 32], S)], verify: impl Fn(&[u8; 32], &S) -> bool) -> f64 {
    rate(|| {
        for (digest, signature) in cases {
            assert!(verify(black_box(digest), black_box(signature)));
        }
        cases.len()
    })
}

fn main() {
    let signing = SigningKey::from_slice(&[0x5a; 32]).expect("a valid scalar");
    let key = *signing.verifying_key();
    let cases: Vec<([u8; 32], Signature)> = (0..SIGNATURES)
        .map(|i| {
            let digest: [u8; 32] = sha2::Sha256::digest(format!("postback {i}")).into();
            (digest, signing.sign_prehash(&digest).expect("signs"))
        })
        .collect();

    let started = Instant::now();
    let fixed = FixedKeyVerifier::new(&key);
    let build = started.elapsed();

    let generic = rate_over(&cases, |d, s| key.verify_prehash(d, s).is_ok());
    let single = rate_over(&cases, |d, s| fixed.verify_prehash(d, s));
    let batches: Vec<Vec<(&FixedKeyVerifier, [u8; 32], Signature)>> = cases
        .chunks(BATCH)
        .map(|chunk| chunk.iter().map(|(d, s)| (&fixed, *d, *s)).collect())
        .collect();
    let batched = rate(|| {
        for batch in &batches {
            assert!(FixedKeyVerifier::verify_batch(black_box(batch)).iter().all(|ok| *ok));
        }
        cases.len()
    });

    println!("table_build_ms={:.1}", build.as_secs_f64() * 1e3);
    println!("table_bytes={}", fixed.table_bytes() + FixedKeyVerifier::generator_table_bytes());
    println!("p256_generic_per_s={generic:.0}");
    println!("fixed_single_per_s={single:.0}");
    println!("fixed_batched_per_s={batched:.0}");
    p192_rates();
}

fn p192_rates() {
    let secret: p192::NonZeroScalar =
        Option::from(p192::NonZeroScalar::from_repr([0x5a; 24].into())).expect("a valid scalar");
    let point = p192::elliptic_curve::group::Curve::to_affine(
        &(p192::ProjectivePoint::GENERATOR * *secret),
    );
    let key = p192::ecdsa::VerifyingKey::from_affine(point).expect("a valid point");
    let cases: Vec<([u8; 32], p192::ecdsa::Signature)> = (0..SIGNATURES)
        .map(|i| {
            let digest: [u8; 32] = sha2::Sha256::digest(format!("postback {i}")).into();
            let (signature, _) = ecdsa::hazmat::sign_prehashed_rfc6979::<
                p192::NistP192,
                sha2::Sha256,
            >(&secret, &digest, &[]);
            (digest, signature)
        })
        .collect();
    let fixed = FixedKeyVerifierP192::new(&key);
    let generic = rate_over(&cases, |d, s| key.verify_prehash(d, s).is_ok());
    let single = rate_over(&cases, |d, s| fixed.verify_prehash(d, s));
    println!("p192_generic_per_s={generic:.0}");
    println!("p192_fixed_single_per_s={single:.0}");
}
