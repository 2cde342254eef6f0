//! `s⁻¹ mod n` for a lone ECDSA verification, in variable time: Bernstein and Yang's safegcd with
//! the variable-time divsteps of libsecp256k1's write-up (`doc/safegcd_implementation.md`), on
//! numbers of five signed 62-bit limbs.
//!
//! `crypto-bigint`'s variable-time inversion, which the curve crates use, takes one divstep at a
//! time (about 6 µs for a P-256 scalar here, an eighth of a whole fixed-key verification); this
//! one skips runs of zero bits and cancels up to six bits per step. Inputs are public (a
//! signature's `s`), so branching on them leaks nothing. The caller checks `s·s⁻¹ = 1` before
//! using an answer and falls back to the curve crate's inversion otherwise.

const LIMB_BITS: u32 = 62;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;
/// Enough limbs for a 256-bit modulus and the signed intermediate values.
const LIMBS: usize = 5;
/// Divsteps bound for 256-bit inputs is 590 (safegcd-bounds); 12 rounds of 62 cover it.
const MAX_ROUNDS: usize = 12;

type Signed62 = [i64; LIMBS];

/// An odd modulus below 2^256, prepared for [`invert`].
pub(crate) struct Modulus {
    limbs: Signed62,
    /// `modulus⁻¹ mod 2^62`.
    inverse_62: u64,
}

impl Modulus {
    /// `words` little-endian; the modulus must be odd.
    pub(crate) const fn new(words: [u64; 4]) -> Self {
        let limbs = to_signed62(&words);
        // Newton's iteration: each step doubles the correct low bits (3 to begin with).
        let m = words[0];
        let mut inverse = m;
        let mut step = 0;
        while step < 5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(inverse)));
            step += 1;
        }
        Self { limbs, inverse_62: inverse & LIMB_MASK }
    }
}

/// Big-endian bytes (at most 32) as little-endian 64-bit words.
pub(crate) const fn words_of_big_endian<const N: usize>(bytes: &[u8; N]) -> [u64; 4] {
    let mut words = [0u64; 4];
    let mut i = 0;
    while i < N {
        let byte = bytes[N - 1 - i] as u64;
        words[i / 8] |= byte << (8 * (i % 8));
        i += 1;
    }
    words
}

const fn to_signed62(words: &[u64; 4]) -> Signed62 {
    [
        (words[0] & LIMB_MASK) as i64,
        ((words[0] >> 62 | words[1] << 2) & LIMB_MASK) as i64,
        ((words[1] >> 60 | words[2] << 4) & LIMB_MASK) as i64,
        ((words[2] >> 58 | words[3] << 6) & LIMB_MASK) as i64,
        (words[3] >> 56) as i64,
    ]
}

/// `x⁻¹ mod modulus` for `0 < x < modulus` (little-endian words), or `None` if `x` shares a
/// factor with the modulus or the rounds run out (neither happens for a prime modulus).
pub(crate) fn invert(x: &[u64; 4], modulus: &Modulus) -> Option<[u64; 4]> {
    let mut f = modulus.limbs;
    let mut g = to_signed62(x);
    let mut d: Signed62 = [0; LIMBS];
    let mut e: Signed62 = [1, 0, 0, 0, 0];
    // η = -δ, with δ = 1/2 at the start (the "half-delta" divstep).
    let mut eta: i64 = -1;
    for _ in 0..MAX_ROUNDS {
        let (next_eta, matrix) = divsteps_62(eta, f[0] as u64, g[0] as u64);
        eta = next_eta;
        update_de(&mut d, &mut e, &matrix, modulus);
        update_fg(&mut f, &mut g, &matrix);
        if g.iter().all(|limb| *limb == 0) {
            // f = ±gcd: an inverse exists only if it is ±1.
            let negative = f[LIMBS - 1] < 0;
            let magnitude_is_one = if negative {
                f == [-1, 0, 0, 0, 0] || normalize_carries(negate(f)) == [1, 0, 0, 0, 0]
            } else {
                normalize_carries(f) == [1, 0, 0, 0, 0]
            };
            if !magnitude_is_one {
                return None;
            }
            return Some(normalize(d, negative, modulus));
        }
    }
    None
}

/// 62 divsteps on the low bits of `f` (odd) and `g`: the new η and the transition matrix
/// `[u, v, q, r]`, scaled by 2^62, so that `(f', g') = (u·f + v·g, q·f + r·g) / 2^62`.
fn divsteps_62(mut eta: i64, mut f: u64, mut g: u64) -> (i64, [i64; 4]) {
    let (mut u, mut v, mut q, mut r) = (1u64, 0u64, 0u64, 1u64);
    let mut left = LIMB_BITS;
    loop {
        // Zeros at the bottom of g: as many halvings at once, at most what is left.
        let zeros = (g | (u64::MAX << left)).trailing_zeros();
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        eta -= i64::from(zeros);
        left -= zeros;
        if left == 0 {
            break;
        }
        // f and g are both odd now.
        if eta < 0 {
            eta = -eta;
            (f, g) = (g, f.wrapping_neg());
            (u, q) = (q, u.wrapping_neg());
            (v, r) = (r, v.wrapping_neg());
        }
        // Cancel the low `limit` bits of g with a multiple of f: w = -g·f⁻¹ mod 2^limit, where
        // f·(f² - 2) ≡ -f⁻¹ mod 64 for odd f.
        let limit = u32::try_from(eta + 1).unwrap_or(u32::MAX).min(left).min(6);
        let mask = (1u64 << limit) - 1;
        let w = g.wrapping_mul(f).wrapping_mul(f.wrapping_mul(f).wrapping_sub(2)) & mask;
        g = g.wrapping_add(f.wrapping_mul(w));
        q = q.wrapping_add(u.wrapping_mul(w));
        r = r.wrapping_add(v.wrapping_mul(w));
    }
    // Two's complement reinterpretation: the matrix entries are at most 2^62 in magnitude.
    (eta, [u as i64, v as i64, q as i64, r as i64])
}

/// `(f, g) = (u·f + v·g, q·f + r·g) / 2^62`, exactly.
fn update_fg(f: &mut Signed62, g: &mut Signed62, matrix: &[i64; 4]) {
    apply_matrix(f, g, matrix, &[0; LIMBS], 0, 0);
}

/// `(d, e) = (u·d + v·e, q·d + r·e) / 2^62 mod modulus`, kept within (-2·modulus, modulus): a
/// multiple of the modulus is added to make each exactly divisible by 2^62.
fn update_de(d: &mut Signed62, e: &mut Signed62, matrix: &[i64; 4], modulus: &Modulus) {
    let [u, v, q, r] = *matrix;
    let d_negative = d[LIMBS - 1] >> 63;
    let e_negative = e[LIMBS - 1] >> 63;
    let mut md = (u & d_negative) + (v & e_negative);
    let mut me = (q & d_negative) + (r & e_negative);
    // Low 64 bits of the lowest limbs' sums, as the two's complement they are.
    let cd_low = (u.wrapping_mul(d[0])).wrapping_add(v.wrapping_mul(e[0])) as u64;
    let ce_low = (q.wrapping_mul(d[0])).wrapping_add(r.wrapping_mul(e[0])) as u64;
    md -= (modulus.inverse_62.wrapping_mul(cd_low).wrapping_add(md as u64) & LIMB_MASK) as i64;
    me -= (modulus.inverse_62.wrapping_mul(ce_low).wrapping_add(me as u64) & LIMB_MASK) as i64;
    apply_matrix(d, e, matrix, &modulus.limbs, i128::from(md), i128::from(me));
}

/// `(a, b) = (u·a + v·b + ma·m, q·a + r·b + mb·m) / 2^62`, for sums whose low 62 bits are zero.
fn apply_matrix(
    a: &mut Signed62,
    b: &mut Signed62,
    &[u, v, q, r]: &[i64; 4],
    m: &Signed62,
    ma: i128,
    mb: i128,
) {
    let (u, v, q, r) = (i128::from(u), i128::from(v), i128::from(q), i128::from(r));
    let (mut ca, mut cb) = (0i128, 0i128);
    for i in 0..LIMBS {
        ca += u * i128::from(a[i]) + v * i128::from(b[i]) + i128::from(m[i]) * ma;
        cb += q * i128::from(a[i]) + r * i128::from(b[i]) + i128::from(m[i]) * mb;
        if i > 0 {
            a[i - 1] = low_limb(ca);
            b[i - 1] = low_limb(cb);
        }
        ca >>= LIMB_BITS;
        cb >>= LIMB_BITS;
    }
    a[LIMBS - 1] = top_limb(ca);
    b[LIMBS - 1] = top_limb(cb);
}

fn low_limb(value: i128) -> i64 {
    // Masked to 62 bits, so it fits.
    i64::try_from(value & i128::from(LIMB_MASK)).unwrap_or(0)
}

fn top_limb(value: i128) -> i64 {
    // What is left after the lower limbs is below 2^64 in magnitude for values below 2^310.
    value as i64
}

fn negate(value: Signed62) -> Signed62 {
    value.map(i64::wrapping_neg)
}

/// Lower limbs in [0, 2^62), the sign in the top limb.
fn normalize_carries(mut value: Signed62) -> Signed62 {
    for i in 0..LIMBS - 1 {
        let carry = value[i] >> LIMB_BITS;
        value[i] &= LIMB_MASK as i64;
        value[i + 1] += carry;
    }
    value
}

fn add(a: &Signed62, b: &Signed62) -> Signed62 {
    normalize_carries(std::array::from_fn(|i| a[i] + b[i]))
}

fn subtract(a: &Signed62, b: &Signed62) -> Signed62 {
    normalize_carries(std::array::from_fn(|i| a[i] - b[i]))
}

/// `±d` brought into [0, modulus), as little-endian words.
fn normalize(d: Signed62, negate_it: bool, modulus: &Modulus) -> [u64; 4] {
    let mut value = normalize_carries(if negate_it { negate(d) } else { d });
    // Now within (-2·modulus, 2·modulus).
    while value[LIMBS - 1] < 0 {
        value = add(&value, &modulus.limbs);
    }
    loop {
        let less = subtract(&value, &modulus.limbs);
        if less[LIMBS - 1] < 0 {
            break;
        }
        value = less;
    }
    let limb = |i: usize| value[i] as u64;
    [
        limb(0) | limb(1) << 62,
        limb(1) >> 2 | limb(2) << 60,
        limb(2) >> 4 | limb(3) << 58,
        limb(3) >> 6 | limb(4) << 56,
    ]
}

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::ff::{Field as _, PrimeField as _};
    use proptest::prelude::*;

    use super::*;

    const P256_ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    fn scalar_words(s: &p256::Scalar) -> [u64; 4] {
        words_of_big_endian(&<[u8; 32]>::from(s.to_repr()))
    }

    fn agrees_with_p256(bytes: [u8; 32]) -> Result<(), TestCaseError> {
        let modulus = Modulus::new(words_of_big_endian(&P256_ORDER));
        let Some(s) = Option::<p256::Scalar>::from(p256::Scalar::from_repr(bytes.into())) else {
            return Ok(());
        };
        let expected = Option::<p256::Scalar>::from(s.invert_vartime());
        let ours = invert(&scalar_words(&s), &modulus);
        match expected {
            None => prop_assert!(ours.is_none() || bool::from(s.is_zero())),
            Some(inverse) => prop_assert_eq!(ours, Some(scalar_words(&inverse))),
        }
        Ok(())
    }

    #[test]
    fn the_modulus_inverse_is_right() {
        let modulus = Modulus::new(words_of_big_endian(&P256_ORDER));
        let low = words_of_big_endian(&P256_ORDER)[0];
        assert_eq!(low.wrapping_mul(modulus.inverse_62) & LIMB_MASK, 1);
    }

    #[test]
    fn edge_scalars_invert_like_p256() {
        let minus_one = p256::Scalar::ZERO - p256::Scalar::ONE;
        let half = p256::Scalar::from(2u64).invert().unwrap();
        for s in [
            p256::Scalar::ONE,
            p256::Scalar::from(2u64),
            p256::Scalar::from(u64::MAX),
            minus_one,
            half,
            minus_one * half,
        ] {
            agrees_with_p256(s.to_repr().into()).unwrap();
        }
    }

    proptest! {
        #[test]
        fn any_scalar_inverts_like_p256(bytes in any::<[u8; 32]>()) {
            agrees_with_p256(bytes)?;
        }

        #[test]
        fn small_and_sparse_scalars_invert_like_p256(low in 1u64.., shift in 0u32..192) {
            let mut words = [0u64; 4];
            words[(shift / 64) as usize] = low << (shift % 64);
            let mut bytes = [0u8; 32];
            for (i, word) in words.iter().enumerate() {
                bytes[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&word.to_be_bytes());
            }
            agrees_with_p256(bytes)?;
        }
    }
}
