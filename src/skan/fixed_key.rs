//! ECDSA verification specialised for keys known in advance: P-256 (SKAdNetwork 2.1-4.0 and
//! AdAttributionKit) and, in [`p192_tables`], P-192 (SKAdNetwork 1.0 and 2.0). One macro writes
//! both from the same code.
//!
//! A verification computes `u1·G + u2·Q` and compares its x-coordinate with `r`. Apple's keys
//! never change, so both `G` and `Q` are fixed: this module precomputes, once per point, the
//! multiples `j·2^(W·i)·P` (`j` = 1..2^(W-1), one row per W-bit window, affine coordinates), writes
//! each scalar in signed W-bit digits, and sums one table entry per non-zero digit. That is about
//! 2·257/W mixed additions (2·193/W on P-192) and no doublings, instead of the generic path's 256
//! doublings. The sum stays in Jacobian coordinates: `x = X/Z²`, so `x ≡ r` is checked as
//! `X = r·Z²` (and `X = (r+n)·Z²` when `r + n < p`), with no field inversion.
//!
//! The field and scalar arithmetic is the curve crate's own (`p256`, `p192`); only the point
//! formulas (EFD `madd-2004-hmv`, `add-1998-cmo-2` and `dbl-2001-b`), the table walk and, in
//! [`super::order_inverse`], a faster variable-time inversion of `s` live here.
//!
//! **Variable time, on purpose.** Everything a verifier touches is public: the key, the message,
//! the signature. Branching on digits and on special cases leaks nothing secret, so this code is
//! variable-time and must never be used with secret scalars (signing keeps to the curve crates).
//!
//! Correctness is pinned by differential tests against `p256`'s and `p192`'s verifiers over
//! random and broken signatures (`tests` below, and a million P-256 cases behind `--ignored`).

/// `a - b` for `a ≥ b`, big-endian bytes, at compile time.
pub(crate) const fn subtract_big_endian<const N: usize>(a: &[u8; N], b: &[u8; N]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut borrow = 0i16;
    let mut i = N;
    while i > 0 {
        i -= 1;
        let mut digit = a[i] as i16 - b[i] as i16 - borrow;
        borrow = 0;
        if digit < 0 {
            digit += 256;
            borrow = 1;
        }
        out[i] = digit as u8;
    }
    out
}

/// Everything a fixed-key verifier is, for one curve: `$krate` is the curve's crate, `$curve` its
/// curve type, `$bytes` the length of its field elements and scalars, `$invert` and
/// `$field_invert` its fastest scalar and field inversions (a method of the type or of
/// `crypto-bigint`'s `Invert`, whose variable-time inversion `p192`'s types offer only there).
macro_rules! fixed_key_curve {
    (
        $krate:ident,
        $curve:ident,
        $bytes:literal,
        $invert:ident,
        $field_invert:ident,
        prime: $prime:expr,
        order: $order:expr
    ) => {
        use std::sync::OnceLock;

        use $crate::skan::order_inverse;

        #[allow(
            unused_imports,
            reason = "p256's types have inherent variable-time inversions"
        )]
        use $krate::elliptic_curve::bigint::Invert as _;
        use $krate::elliptic_curve::ff::PrimeField as _;
        use $krate::elliptic_curve::group::{Curve as _, Group as _};
        use $krate::elliptic_curve::hazmat::FieldArithmetic;
        use $krate::elliptic_curve::ops::Reduce as _;
        use $krate::elliptic_curve::point::AffineCoordinates as _;
        use $krate::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, $curve};

        type FieldElement = <$curve as FieldArithmetic>::FieldElement;

        /// Bytes of a field element and of a scalar.
        const BYTES: usize = $bytes;

        /// Window width in bits. On P-256, 10 gives 26 rows of 512 points (850 KiB per point) and
        /// 52 additions per verification; measured on a 2 MiB-L2 core, 8 bits (270 KiB, 66
        /// additions) is 10 % slower and 12 bits (2.9 MiB, 44 additions) no faster, as its tables
        /// stop fitting in cache.
        const WINDOW_BITS: usize = 10;
        /// Rows: enough windows for a scalar plus the carry out of its top signed digit.
        const WINDOWS: usize = (8 * BYTES + 1).div_ceil(WINDOW_BITS);
        /// Entries per row: the digit magnitudes 1..=2^(W-1).
        const ROW: usize = 1 << (WINDOW_BITS - 1);

        /// `p - n`: when `r < p - n`, `r + n` is a field element too and is the other x-coordinate
        /// that reduces to `r` mod n.
        const P_MINUS_N: [u8; BYTES] = $crate::skan::fixed_key::subtract_big_endian(&PRIME, &ORDER);

        /// The field prime `p` as big-endian bytes.
        const PRIME: [u8; BYTES] = $prime;

        /// The group order `n` as big-endian bytes.
        const ORDER: [u8; BYTES] = $order;

        #[derive(Clone, Copy)]
        struct Affine {
            x: FieldElement,
            y: FieldElement,
        }

        impl Affine {
            const ZERO: Self = Self { x: FieldElement::ZERO, y: FieldElement::ZERO };
        }

        /// Precomputed multiples of one fixed point, one row per window.
        struct Table {
            entries: Box<[Affine]>,
        }

        impl Table {
            fn new(point: &ProjectivePoint) -> Self {
                let mut multiples = Vec::with_capacity(WINDOWS * ROW);
                let mut base = *point;
                for _ in 0..WINDOWS {
                    let mut multiple = base;
                    for _ in 0..ROW {
                        multiples.push(multiple);
                        multiple += base;
                    }
                    for _ in 0..WINDOW_BITS {
                        base = base.double();
                    }
                }
                let mut affine = vec![AffinePoint::IDENTITY; multiples.len()];
                ProjectivePoint::batch_normalize(&multiples, &mut affine);
                let entries = affine
                    .iter()
                    .map(|p| Affine { x: field_element(&p.x()), y: field_element(&p.y()) })
                    .collect();
                Self { entries }
            }

            /// `digit · 2^(W·row) · P` for a non-zero signed digit.
            fn entry(&self, row: usize, digit: i16) -> Affine {
                let entry = self.entries[row * ROW + usize::from(digit.unsigned_abs()) - 1];
                if digit < 0 { Affine { x: entry.x, y: -entry.y } } else { entry }
            }

            fn bytes(&self) -> usize {
                self.entries.len() * std::mem::size_of::<Affine>()
            }
        }

        /// A canonical coordinate from the curve crate is always below `p`.
        fn field_element(bytes: &FieldBytes) -> FieldElement {
            Option::from(FieldElement::from_repr(*bytes)).unwrap_or(FieldElement::ZERO)
        }

        fn generator_table() -> &'static Table {
            static GENERATOR: OnceLock<Table> = OnceLock::new();
            GENERATOR.get_or_init(|| Table::new(&ProjectivePoint::GENERATOR))
        }

        /// A point in Jacobian coordinates (`x = X/Z²`, `y = Y/Z³`), or the point at infinity.
        #[derive(Clone, Copy)]
        struct Jacobian {
            x: FieldElement,
            y: FieldElement,
            z: FieldElement,
            infinity: bool,
        }

        impl From<Affine> for Jacobian {
            fn from(p: Affine) -> Self {
                Self { x: p.x, y: p.y, z: FieldElement::ONE, infinity: false }
            }
        }

        impl Jacobian {
            /// Whether the point's x-coordinate, reduced mod n, is `r`: `X = r·Z²`, or
            /// `X = (r+n)·Z²` when `r + n < p`.
            fn x_matches(&self, r: &Scalar) -> bool {
                if self.infinity {
                    return false;
                }
                let r_bytes = r.to_repr();
                let z2 = self.z.square();
                let r_field = field_element(&r_bytes);
                if self.x == r_field * z2 {
                    return true;
                }
                r_bytes.as_slice() < P_MINUS_N.as_slice()
                    && self.x == (r_field + field_element(&FieldBytes::from(ORDER))) * z2
            }

            const INFINITY: Self = Self {
                x: FieldElement::ONE,
                y: FieldElement::ONE,
                z: FieldElement::ZERO,
                infinity: true,
            };

            /// `self + p`, EFD `madd-2004-hmv` (8M + 3S), with the equal and opposite cases
            /// handled. Chosen over `madd-2007-bl` (7M + 4S) because it needs half the additions,
            /// and the crate's field additions cost about half a multiplication.
            fn add_affine(&mut self, p: &Affine) {
                if self.infinity {
                    *self = Self { x: p.x, y: p.y, z: FieldElement::ONE, infinity: false };
                    return;
                }
                let z1z1 = self.z.square();
                let h = p.x * z1z1 - self.x;
                let r = p.y * (z1z1 * self.z) - self.y;
                if bool::from(h.is_zero()) {
                    self.add_same_x(bool::from(r.is_zero()));
                    return;
                }
                let hh = h.square();
                let hhh = hh * h;
                let v = self.x * hh;
                let x3 = r.square() - v.double() - hhh;
                let y3 = r * (v - x3) - self.y * hhh;
                let z3 = self.z * h;
                *self = Self { x: x3, y: y3, z: z3, infinity: false };
            }

            /// `a += pa` and `b += pb` at once: the same steps as [`Self::add_affine`], written
            /// side by side so the processor overlaps the two independent chains of field
            /// multiplications (each addition alone is mostly one chain). Infinity and the equal
            /// and opposite cases go through [`Self::add_affine`], one at a time.
            fn add_affine_pair(a: &mut Self, pa: &Affine, b: &mut Self, pb: &Affine) {
                if a.infinity || b.infinity {
                    a.add_affine(pa);
                    b.add_affine(pb);
                    return;
                }
                let a_z1z1 = a.z.square();
                let b_z1z1 = b.z.square();
                let a_h = pa.x * a_z1z1 - a.x;
                let b_h = pb.x * b_z1z1 - b.x;
                let a_r = pa.y * (a_z1z1 * a.z) - a.y;
                let b_r = pb.y * (b_z1z1 * b.z) - b.y;
                if bool::from(a_h.is_zero() | b_h.is_zero()) {
                    a.add_affine(pa);
                    b.add_affine(pb);
                    return;
                }
                let a_hh = a_h.square();
                let b_hh = b_h.square();
                let a_hhh = a_hh * a_h;
                let b_hhh = b_hh * b_h;
                let a_v = a.x * a_hh;
                let b_v = b.x * b_hh;
                let a_x3 = a_r.square() - a_v.double() - a_hhh;
                let b_x3 = b_r.square() - b_v.double() - b_hhh;
                let a_y3 = a_r * (a_v - a_x3) - a.y * a_hhh;
                let b_y3 = b_r * (b_v - b_x3) - b.y * b_hhh;
                let a_z3 = a.z * a_h;
                let b_z3 = b.z * b_h;
                *a = Self { x: a_x3, y: a_y3, z: a_z3, infinity: false };
                *b = Self { x: b_x3, y: b_y3, z: b_z3, infinity: false };
            }

            /// `self + other`, EFD `add-1998-cmo-2` (12M + 4S), with infinity and the equal and
            /// opposite cases handled.
            fn add(&mut self, other: &Self) {
                if other.infinity {
                    return;
                }
                if self.infinity {
                    *self = *other;
                    return;
                }
                let z1z1 = self.z.square();
                let z2z2 = other.z.square();
                let u1 = self.x * z2z2;
                let u2 = other.x * z1z1;
                let s1 = self.y * other.z * z2z2;
                let s2 = other.y * self.z * z1z1;
                let h = u2 - u1;
                let r = s2 - s1;
                if bool::from(h.is_zero()) {
                    self.add_same_x(bool::from(r.is_zero()));
                    return;
                }
                let hh = h.square();
                let hhh = hh * h;
                let v = u1 * hh;
                let x3 = r.square() - hhh - v.double();
                let y3 = r * (v - x3) - s1 * hhh;
                let z3 = self.z * other.z * h;
                *self = Self { x: x3, y: y3, z: z3, infinity: false };
            }

            /// The sum of `self` and a point with the same x-coordinate: twice `self` if the
            /// y-coordinates agree too, else the point at infinity.
            fn add_same_x(&mut self, same_y: bool) {
                if same_y {
                    self.double();
                } else {
                    *self = Self::INFINITY;
                }
            }

            /// `2·self`, EFD `dbl-2001-b` for `a = -3` (3M + 5S).
            fn double(&mut self) {
                if self.infinity || bool::from(self.y.is_zero()) {
                    *self = Self::INFINITY;
                    return;
                }
                let delta = self.z.square();
                let gamma = self.y.square();
                let beta = self.x * gamma;
                let alpha = {
                    let t = (self.x - delta) * (self.x + delta);
                    t.double() + t
                };
                let x3 = alpha.square() - beta.double().double().double();
                let z3 = (self.y + self.z).square() - gamma - delta;
                let y3 = alpha * (beta.double().double() - x3)
                    - gamma.square().double().double().double();
                *self = Self { x: x3, y: y3, z: z3, infinity: false };
            }
        }

        /// The scalar in signed base-2^W digits, least significant first: `k = Σ dᵢ·2^(W·i)` with
        /// `-2^(W-1) ≤ dᵢ ≤ 2^(W-1)`.
        fn signed_digits(k: &Scalar) -> [i16; WINDOWS] {
            let bytes = k.to_repr();
            let mut limbs = [0u64; BYTES / 8];
            for (i, limb) in limbs.iter_mut().enumerate() {
                let end = BYTES - 8 * i;
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[end - 8..end]);
                *limb = u64::from_be_bytes(word);
            }
            let bits = |at: usize| -> u32 {
                if at >= 8 * BYTES {
                    return 0;
                }
                let (limb, shift) = (at / 64, at % 64);
                let mut value = limbs[limb] >> shift;
                if shift + WINDOW_BITS > 64 && limb + 1 < BYTES / 8 {
                    value |= limbs[limb + 1] << (64 - shift);
                }
                // Masked to W bits, so it fits.
                u32::try_from(value & ((1 << WINDOW_BITS) - 1)).unwrap_or(0)
            };
            let mut digits = [0i16; WINDOWS];
            let mut carry = 0;
            for (i, digit) in digits.iter_mut().enumerate() {
                let window = bits(i * WINDOW_BITS) + carry;
                let signed = i32::try_from(window).unwrap_or(0);
                if window > (1 << (WINDOW_BITS - 1)) {
                    *digit = i16::try_from(signed - (1 << WINDOW_BITS)).unwrap_or(0);
                    carry = 1;
                } else {
                    *digit = i16::try_from(signed).unwrap_or(0);
                    carry = 0;
                }
            }
            digits
        }

        // An `(r, s)` pair already checked to be in `1..n`, as `$krate::ecdsa::Signature`
        // guarantees.
        type SignatureScalars = (Scalar, Scalar);

        /// Verifies ECDSA signatures under one fixed public key, several times faster than the
        /// generic path, with the same answer on every input.
        pub struct FixedKeyVerifier {
            key: Table,
        }

        impl std::fmt::Debug for FixedKeyVerifier {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("FixedKeyVerifier").field("table_bytes", &self.key.bytes()).finish()
            }
        }

        impl FixedKeyVerifier {
            /// Build the key's table (and, the first time, the generator's). Milliseconds of work:
            /// do it at start-up, never per request.
            #[must_use]
            pub fn new(key: &$krate::ecdsa::VerifyingKey) -> Self {
                generator_table();
                Self { key: Table::new(&ProjectivePoint::from(*key.as_affine())) }
            }

            /// Memory held for this key's table (the generator's table is shared, the same size).
            #[must_use]
            pub fn table_bytes(&self) -> usize {
                self.key.bytes()
            }

            /// Memory held by the generator's table, shared by every verifier.
            #[must_use]
            pub fn generator_table_bytes() -> usize {
                generator_table().bytes()
            }

            /// Verify a signature over SHA-256(`message`); the same answer as
            /// `$krate::ecdsa::VerifyingKey::verify`.
            #[must_use]
            pub fn verify(&self, message: &[u8], signature: &$krate::ecdsa::Signature) -> bool {
                use sha2::Digest as _;
                let digest: [u8; 32] = sha2::Sha256::digest(message).into();
                self.verify_prehash(&digest, signature)
            }

            /// Verify a signature over a SHA-256 digest.
            #[must_use]
            pub fn verify_prehash(
                &self,
                digest: &[u8; 32],
                signature: &$krate::ecdsa::Signature,
            ) -> bool {
                let (r, s) = signature.split_scalars();
                self.verify_with_inverse(digest, &r, &invert_scalar(&s))
            }

            /// The verification proper, given `s⁻¹ mod n` (computed alone or for a whole batch).
            fn verify_with_inverse(
                &self,
                digest: &[u8; 32],
                r: &Scalar,
                s_inverse: &Scalar,
            ) -> bool {
                let (u1, u2) = multipliers(digest, r, s_inverse);
                let generator = generator_table();
                // Every entry is loaded before the first addition: the loads do not depend on
                // each other, so the processor overlaps their cache misses (P-256's two tables
                // together outgrow a 1 MiB L2), where loading each beside its addition would wait
                // for one miss at a time.
                let mut of_generator = [Affine::ZERO; WINDOWS];
                let mut of_key = [Affine::ZERO; WINDOWS];
                let (mut generator_count, mut key_count) = (0, 0);
                for (row, (d1, d2)) in
                    signed_digits(&u1).into_iter().zip(signed_digits(&u2)).enumerate()
                {
                    if d1 != 0 {
                        of_generator[generator_count] = generator.entry(row, d1);
                        generator_count += 1;
                    }
                    if d2 != 0 {
                        of_key[key_count] = self.key.entry(row, d2);
                        key_count += 1;
                    }
                }
                // Two sums, `u1·G` and `u2·Q`, added side by side and then together.
                let (mut sum, mut key_sum) = (Jacobian::INFINITY, Jacobian::INFINITY);
                let pairs = generator_count.min(key_count);
                for (g, q) in of_generator[..pairs].iter().zip(&of_key[..pairs]) {
                    Jacobian::add_affine_pair(&mut sum, g, &mut key_sum, q);
                }
                for g in &of_generator[pairs..generator_count] {
                    sum.add_affine(g);
                }
                for q in &of_key[pairs..key_count] {
                    key_sum.add_affine(q);
                }
                sum.add(&key_sum);
                sum.x_matches(r)
            }

            /// Verify many signatures at once (each item names its verifier, so one batch may
            /// span keys). Every `s` is inverted with one scalar inversion, and the sums are kept
            /// in affine coordinates, each addition step of the whole batch sharing one field
            /// inversion (Montgomery's trick): an affine addition is then about 5M + 1S against
            /// the Jacobian mixed addition's 8M + 3S. A sum that meets an equal or opposite point
            /// goes on in Jacobian coordinates, whose formulas handle those cases.
            #[must_use]
            pub fn verify_batch(
                items: &[(&Self, [u8; 32], $krate::ecdsa::Signature)],
            ) -> Vec<bool> {
                let scalars: Vec<SignatureScalars> = items
                    .iter()
                    .map(|(_, _, signature)| {
                        let (r, s) = signature.split_scalars();
                        (*r, *s)
                    })
                    .collect();
                // prefix[i] = s₀·…·sᵢ₋₁
                let mut prefix = Vec::with_capacity(scalars.len());
                let mut product = Scalar::ONE;
                for (_, s) in &scalars {
                    prefix.push(product);
                    product *= s;
                }
                // Every s is non-zero and n is prime, so the product is invertible.
                let mut inverse = invert_scalar(&product);
                let mut digits = vec![([0i16; WINDOWS], [0i16; WINDOWS]); items.len()];
                for i in (0..items.len()).rev() {
                    let (r, s) = &scalars[i];
                    let s_inverse = inverse * prefix[i];
                    inverse *= s;
                    let (u1, u2) = multipliers(&items[i].1, r, &s_inverse);
                    digits[i] = (signed_digits(&u1), signed_digits(&u2));
                }
                let mut sums: Vec<BatchSum> = vec![BatchSum::Infinity; items.len()];
                let generator = generator_table();
                let mut pending: Vec<(usize, Affine)> = Vec::with_capacity(items.len());
                let mut denominators: Vec<FieldElement> = Vec::with_capacity(items.len());
                for row in 0..WINDOWS {
                    for of_key in [false, true] {
                        pending.clear();
                        denominators.clear();
                        for (i, (verifier, _, _)) in items.iter().enumerate() {
                            let digit = if of_key { digits[i].1[row] } else { digits[i].0[row] };
                            if digit == 0 {
                                continue;
                            }
                            let table = if of_key { &verifier.key } else { generator };
                            let point = table.entry(row, digit);
                            match &mut sums[i] {
                                BatchSum::Infinity => sums[i] = BatchSum::Affine(point),
                                BatchSum::Jacobian(sum) => sum.add_affine(&point),
                                BatchSum::Affine(sum) => {
                                    let dx = point.x - sum.x;
                                    if bool::from(dx.is_zero()) {
                                        let mut jacobian = Jacobian::from(*sum);
                                        jacobian.add_affine(&point);
                                        sums[i] = BatchSum::Jacobian(jacobian);
                                    } else {
                                        pending.push((i, point));
                                        denominators.push(dx);
                                    }
                                }
                            }
                        }
                        invert_all(&mut denominators);
                        for ((i, point), inverse) in pending.iter().zip(&denominators) {
                            if let BatchSum::Affine(sum) = &mut sums[*i] {
                                let slope = (point.y - sum.y) * inverse;
                                let x = slope.square() - sum.x - point.x;
                                let y = slope * (sum.x - x) - sum.y;
                                *sum = Affine { x, y };
                            }
                        }
                    }
                }
                sums.into_iter()
                    .zip(&scalars)
                    .map(|(sum, (r, _))| match sum {
                        BatchSum::Infinity => false,
                        BatchSum::Affine(point) => Jacobian::from(point).x_matches(r),
                        BatchSum::Jacobian(point) => point.x_matches(r),
                    })
                    .collect()
            }
        }

        /// One signature's running sum in a batch.
        #[derive(Clone, Copy)]
        enum BatchSum {
            Infinity,
            Affine(Affine),
            /// After an exceptional addition.
            Jacobian(Jacobian),
        }

        /// The order, prepared for [`order_inverse::invert`].
        const ORDER_MODULUS: order_inverse::Modulus =
            order_inverse::Modulus::new(order_inverse::words_of_big_endian(&ORDER));

        /// `s⁻¹ mod n` for a non-zero `s`: the safegcd inversion of [`order_inverse`], checked by
        /// multiplying back, with the curve crate's own inversion behind it.
        fn invert_scalar(s: &Scalar) -> Scalar {
            let repr = s.to_repr();
            let mut bytes = [0u8; BYTES];
            bytes.copy_from_slice(&repr);
            if let Some(words) =
                order_inverse::invert(&order_inverse::words_of_big_endian(&bytes), &ORDER_MODULUS)
            {
                let mut inverse_bytes = FieldBytes::default();
                for (i, word) in words.iter().enumerate().take(BYTES / 8) {
                    inverse_bytes[BYTES - 8 * (i + 1)..BYTES - 8 * i]
                        .copy_from_slice(&word.to_be_bytes());
                }
                if let Some(inverse) = Option::<Scalar>::from(Scalar::from_repr(inverse_bytes)) {
                    if inverse * s == Scalar::ONE {
                        return inverse;
                    }
                }
            }
            Option::from(s.$invert()).unwrap_or(Scalar::ZERO)
        }

        /// `u1 = z·s⁻¹` and `u2 = r·s⁻¹`, with `z` the leftmost bits of the digest, as many as the
        /// order has (all 256 on P-256).
        fn multipliers(digest: &[u8; 32], r: &Scalar, s_inverse: &Scalar) -> (Scalar, Scalar) {
            let mut leftmost = FieldBytes::default();
            leftmost.copy_from_slice(&digest[..BYTES]);
            (Scalar::reduce(&leftmost) * s_inverse, *r * s_inverse)
        }

        /// Replace every element by its inverse with one inversion (Montgomery's trick); the
        /// elements are non-zero.
        fn invert_all(elements: &mut [FieldElement]) {
            let mut prefix = Vec::with_capacity(elements.len());
            let mut product = FieldElement::ONE;
            for e in elements.iter() {
                prefix.push(product);
                product *= e;
            }
            let mut inverse = Option::from(product.$field_invert()).unwrap_or(FieldElement::ZERO);
            for (e, before) in elements.iter_mut().zip(prefix).rev() {
                let next = inverse * *e;
                *e = inverse * before;
                inverse = next;
            }
        }
    };
}

fixed_key_curve!(
    p256,
    NistP256,
    32,
    invert_vartime,
    invert_vartime,
    prime: [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
],
    order: [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
]
);

/// The same verifier for P-192, the curve of SKAdNetwork 1.0 and 2.0 signatures (SHA-256
/// digests, truncated to the order's 192 bits as ECDSA prescribes).
pub(crate) mod p192_tables {
    fixed_key_curve!(
        p192,
        NistP192,
        24,
        invert_vartime,
        invert_vartime,
        prime: [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        order: [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x99, 0xde, 0xf8, 0x36, 0x14, 0x6b, 0xc9, 0xb1, 0xb4, 0xd2, 0x28, 0x31,
        ]
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_p192_tables_agree_with_p192_on_valid_and_broken_signatures() {
        use ecdsa::signature::hazmat::PrehashVerifier as _;
        use p192::{NistP192, NonZeroScalar, ProjectivePoint};
        use rand::{RngExt as _, SeedableRng as _};
        use sha2::{Digest as _, Sha256};

        use super::p192_tables::FixedKeyVerifier as Fixed192;
        let mut rng = rand::rngs::StdRng::seed_from_u64(192);
        let mut random_key = || loop {
            let bytes: [u8; 24] = rng.random();
            if let Some(k) = Option::from(NonZeroScalar::from_repr(bytes.into())) {
                let k: NonZeroScalar = k;
                let public = (ProjectivePoint::GENERATOR * *k).to_affine();
                return (k, p192::ecdsa::VerifyingKey::from_affine(public).unwrap());
            }
        };
        let (mut valid, mut broken) = (0, 0);
        for _ in 0..3 {
            let (secret, public) = random_key();
            let (_, stranger) = random_key();
            let (fixed, fixed_stranger) = (Fixed192::new(&public), Fixed192::new(&stranger));
            for case in 0u32..200 {
                let digest: [u8; 32] = Sha256::digest(case.to_be_bytes()).into();
                let (signature, _) = ecdsa::hazmat::sign_prehashed_rfc6979::<NistP192, Sha256>(
                    &secret,
                    &digest,
                    &[],
                );
                // A bit of the 192 the signature covers (the digest's last 8 bytes are not).
                let mut other_digest = digest;
                other_digest[case as usize % 24] ^= 1 << (case % 8);
                let (r, s) = signature.split_scalars();
                let swapped = p192::ecdsa::Signature::from_scalars(s, r).unwrap();
                for (key, fixed_key, digest, signature) in [
                    (&public, &fixed, digest, signature),
                    (&public, &fixed, other_digest, signature),
                    (&public, &fixed, digest, swapped),
                    (&stranger, &fixed_stranger, digest, signature),
                ]
                .into_iter()
                .take(if case % 50 == 0 { 4 } else { 3 })
                {
                    let generic = key.verify_prehash(&digest, &signature).is_ok();
                    assert_eq!(fixed_key.verify_prehash(&digest, &signature), generic);
                    assert_eq!(
                        Fixed192::verify_batch(&[(fixed_key, digest, signature)]),
                        [generic]
                    );
                    if generic { valid += 1 } else { broken += 1 }
                }
            }
        }
        assert_eq!(valid, 600);
        assert!(broken >= 1_200, "{broken}");
    }

    use p256::ecdsa::signature::{Signer as _, Verifier as _};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    use proptest::prelude::*;

    use super::*;

    fn scalar_from(bytes: [u8; 32]) -> Scalar {
        Scalar::reduce(&FieldBytes::from(bytes))
    }

    #[test]
    fn the_curve_constants_are_p256s() {
        let minus_one = |mut bytes: [u8; 32]| {
            bytes[31] -= 1; // both constants end in a non-zero byte
            bytes
        };
        assert_eq!(<[u8; 32]>::from((-Scalar::ONE).to_repr()), minus_one(ORDER), "n - 1");
        assert_eq!(<[u8; 32]>::from((-FieldElement::ONE).to_repr()), minus_one(PRIME), "p - 1");
        // p - n, worked out independently: 0x4319055358e8617b0c46353d039cdaae.
        assert_eq!(&P_MINUS_N[..16], &[0u8; 16]);
        assert_eq!(
            u128::from_be_bytes(P_MINUS_N[16..].try_into().unwrap()),
            0x4319_0553_58e8_617b_0c46_353d_039c_daae
        );
        let n = field_element(&FieldBytes::from(ORDER));
        let p_minus_n = field_element(&FieldBytes::from(P_MINUS_N));
        assert_eq!(n + p_minus_n, FieldElement::ZERO, "n + (p - n) = p ≡ 0");
    }

    #[test]
    fn signed_digits_sum_back_to_the_scalar() {
        let two_w = Scalar::from(1u64 << WINDOW_BITS);
        for bytes in [[0u8; 32], [0xff; 32], [0x80; 32], ORDER, P_MINUS_N] {
            let k = scalar_from(bytes);
            let mut sum = Scalar::ZERO;
            for digit in signed_digits(&k).iter().rev() {
                sum *= two_w;
                let magnitude = Scalar::from(u64::from(digit.unsigned_abs()));
                sum += if *digit < 0 { -magnitude } else { magnitude };
            }
            assert_eq!(sum, k);
            assert!(signed_digits(&k).iter().all(|d| d.unsigned_abs() <= 1 << (WINDOW_BITS - 1)));
        }
    }

    #[test]
    fn table_entries_are_the_multiples_they_claim() {
        let table = generator_table();
        let top = i16::try_from(ROW).unwrap();
        let last = WINDOWS - 1;
        for (row, digit) in [(0, 1), (0, top), (0, -5), (7, 77), (last, 1), (last, -top)] {
            let mut k = Scalar::from(u64::from(digit.unsigned_abs()));
            for _ in 0..WINDOW_BITS * row {
                k = k.double();
            }
            let k = if digit < 0 { -k } else { k };
            let expected = (ProjectivePoint::GENERATOR * k).to_affine();
            let entry = table.entry(row, digit);
            assert_eq!(
                (field_element(&expected.x()), field_element(&expected.y())),
                (entry.x, entry.y)
            );
        }
    }

    #[test]
    fn jacobian_formulas_agree_with_p256_including_doubling_through_addition() {
        let g = generator_table().entry(0, 1);
        let mut sum = Jacobian::INFINITY;
        sum.add_affine(&g);
        sum.add_affine(&g); // equal points: must double
        sum.add_affine(&g);
        let z_inverse = sum.z.invert().unwrap();
        let x = sum.x * z_inverse.square();
        let three_g = (ProjectivePoint::GENERATOR * Scalar::from(3u64)).to_affine();
        assert_eq!(x, field_element(&three_g.x()));
        let mut opposite = Jacobian::INFINITY;
        opposite.add_affine(&g);
        opposite.add_affine(&Affine { x: g.x, y: -g.y });
        assert!(opposite.infinity, "P + (-P) is the point at infinity");
    }

    #[test]
    fn adding_two_jacobian_points_agrees_with_p256_in_every_case() {
        let g = generator_table().entry(0, 1);
        let x_of = |point: &Jacobian| point.x * point.z.invert().unwrap().square();
        let x_of_multiple =
            |k: u64| field_element(&(ProjectivePoint::GENERATOR * Scalar::from(k)).to_affine().x());
        let multiple = |k: u64| {
            let mut sum = Jacobian::INFINITY;
            for _ in 0..k {
                sum.add_affine(&g);
            }
            sum
        };
        let (two, three) = (multiple(2), multiple(3));
        let mut five = two;
        five.add(&three);
        assert_eq!(x_of(&five), x_of_multiple(5));
        let mut four = two;
        four.add(&multiple(2));
        assert_eq!(x_of(&four), x_of_multiple(4), "equal points double");
        let mut zero = two;
        zero.add(&Jacobian { y: -two.y, ..two });
        assert!(zero.infinity, "P + (-P) is the point at infinity");
        let mut same = three;
        same.add(&Jacobian::INFINITY);
        assert_eq!(x_of(&same), x_of_multiple(3));
        let mut from_infinity = Jacobian::INFINITY;
        from_infinity.add(&three);
        assert_eq!(x_of(&from_infinity), x_of_multiple(3));

        let (mut a, mut b) = (two, three);
        Jacobian::add_affine_pair(&mut a, &g, &mut b, &g);
        assert_eq!((x_of(&a), x_of(&b)), (x_of_multiple(3), x_of_multiple(4)));
        let (mut a, mut b) = (multiple(1), three);
        Jacobian::add_affine_pair(&mut a, &g, &mut b, &g);
        assert_eq!((x_of(&a), x_of(&b)), (x_of_multiple(2), x_of_multiple(4)), "one doubles");
    }

    /// Both verifiers, on the same input.
    fn agree(
        key: &VerifyingKey,
        fixed: &FixedKeyVerifier,
        message: &[u8],
        signature: &Signature,
    ) -> bool {
        let generic = key.verify(message, signature).is_ok();
        let ours = fixed.verify(message, signature);
        assert_eq!(ours, generic, "disagreement on message {message:02x?} signature {signature:?}");
        let digest: [u8; 32] = {
            use sha2::Digest as _;
            sha2::Sha256::digest(message).into()
        };
        let batched = FixedKeyVerifier::verify_batch(&[(fixed, digest, *signature)]);
        assert_eq!(batched, [generic]);
        generic
    }

    fn random_key(rng: &mut rand::rngs::StdRng) -> SigningKey {
        use rand::RngExt as _;
        loop {
            let bytes: [u8; 32] = rng.random();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    /// Random keys and messages; valid signatures, then the same ones broken in every way the
    /// issue lists. Returns how many cases were checked.
    pub(crate) fn differential(cases: usize, seed: u64) -> usize {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut checked = 0;
        let mut signing = random_key(&mut rng);
        let mut other = random_key(&mut rng);
        let mut fixed = FixedKeyVerifier::new(signing.verifying_key());
        // The same cases again in batches of 64, against the answers given one by one.
        let mut batch: Vec<([u8; 32], Signature, bool)> = Vec::new();
        let check_batch = |fixed: &FixedKeyVerifier,
                           batch: &mut Vec<([u8; 32], Signature, bool)>| {
            let items: Vec<_> = batch.iter().map(|(d, s, _)| (fixed, *d, *s)).collect();
            let expected: Vec<bool> = batch.iter().map(|(_, _, valid)| *valid).collect();
            assert_eq!(FixedKeyVerifier::verify_batch(&items), expected);
            batch.clear();
        };
        for case in 0..cases {
            if case % 64 == 0 {
                check_batch(&fixed, &mut batch);
            }
            if case % 1024 == 0 {
                signing = random_key(&mut rng);
                other = random_key(&mut rng);
                fixed = FixedKeyVerifier::new(signing.verifying_key());
            }
            let key = *signing.verifying_key();
            let length = rng.random_range(0..300);
            let message: Vec<u8> = (0..length).map(|_| rng.random()).collect();
            let signature: Signature = signing.sign(&message);
            let (r, s) = signature.split_scalars();
            let pair = |r: Scalar, s: Scalar| Signature::from_scalars(r.to_repr(), s.to_repr());
            let variant = case % 9;
            let candidate = match variant {
                0 => Ok((message, signature)),
                1 => {
                    let mut wrong = message.clone();
                    wrong.push(1);
                    Ok((wrong, signature))
                }
                2 => Ok((message.clone(), other.sign(&message))),
                // High-s: (r, n - s) is valid too; both verifiers must say so.
                3 => pair(*r, -*s).map(|sig| (message, sig)),
                4 => {
                    let bytes: [u8; 64] = {
                        let mut b = [0u8; 64];
                        b.iter_mut().for_each(|x| *x = rng.random());
                        b
                    };
                    Signature::from_slice(&bytes).map(|sig| (message, sig))
                }
                5 => pair(-Scalar::ONE, *s).map(|sig| (message, sig)),
                6 => pair(*r, Scalar::ONE).map(|sig| (message, sig)),
                // r small, so r + n < p: the second x candidate is computed.
                7 => {
                    pair(Scalar::from(rng.random_range(1..u64::MAX)), *s).map(|sig| (message, sig))
                }
                _ => pair(*r + Scalar::ONE, *s).map(|sig| (message, sig)),
            };
            let Ok((message, signature)) = candidate else { continue };
            let valid = agree(&key, &fixed, &message, &signature);
            batch.push((<sha2::Sha256 as sha2::Digest>::digest(&message).into(), signature, valid));
            if variant == 0 || variant == 3 {
                assert!(valid, "a genuine signature verifies");
            }
            checked += 1;
        }
        check_batch(&fixed, &mut batch);
        checked
    }

    /// With the key `Q = ±G` and `u1 = u2` (`z = r`), every row adds the same point twice in a
    /// batch (the affine formula cannot, so the sum goes on in Jacobian coordinates), and with
    /// `-G` the sum is the point at infinity. For `G` the signature is genuine, built from a chosen
    /// nonce `k`: `r = x(k·G)`, `s = k⁻¹·(z + r)`; for `-G` any `s` gives the point at infinity.
    #[test]
    fn a_batch_handles_equal_and_opposite_points() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        use sha2::Digest as _;
        for (d, valid) in [(Scalar::ONE, true), (-Scalar::ONE, false)] {
            let q = (ProjectivePoint::GENERATOR * d).to_affine();
            let key = VerifyingKey::from_affine(q).unwrap();
            let fixed = FixedKeyVerifier::new(&key);
            let k = Scalar::from(0x1234_5678_9abc_u64);
            let r = Scalar::reduce(&(ProjectivePoint::GENERATOR * k).to_affine().x());
            let s = if valid {
                Option::<Scalar>::from(k.invert()).unwrap() * (r + r * d)
            } else {
                Scalar::from(7u64)
            };
            let signature = Signature::from_scalars(r.to_repr(), s.to_repr()).unwrap();
            let digest: [u8; 32] = r.to_repr().into();
            assert_eq!(key.verify_prehash(&digest, &signature).is_ok(), valid);
            let other: [u8; 32] = sha2::Sha256::digest(b"another").into();
            let batch = [(&fixed, digest, signature), (&fixed, other, signature)];
            assert_eq!(FixedKeyVerifier::verify_batch(&batch), [valid, false]);
            assert_eq!(fixed.verify_prehash(&digest, &signature), valid);
        }
    }

    #[test]
    fn agrees_with_p256_on_random_and_broken_signatures() {
        assert!(differential(20_000, 7) > 19_900);
    }

    /// The million-case run the issue asks for: `cargo test --release -- --ignored differential`.
    #[test]
    #[ignore = "a million cases; run in release"]
    fn differential_million() {
        assert!(differential(1_000_000, 2026) > 999_000);
    }

    /// A signature whose point has x in `[n, p)`: x reduces to `r = x - n`, and both verifiers
    /// must accept. Such points are ~2^-128 rare, so the test builds one: pick x = n + t on the
    /// curve, choose z and s, and solve for the public key Q = r⁻¹·(R - z·G) that makes
    /// u1·G + u2·Q = R.
    #[test]
    fn an_x_coordinate_at_or_above_n_is_accepted_as_its_reduction() {
        let b = field_element(&FieldBytes::from(hex_bytes(
            "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
        )));
        let n = field_element(&FieldBytes::from(ORDER));
        // Just above n (small r) and just below p (r just below p - n, the edge of the range).
        for (family, x_of) in [
            ("x = n + t", Box::new(|t: u64| n + FieldElement::from(t)) as Box<dyn Fn(u64) -> _>),
            ("x = p - 1 - t", Box::new(|t: u64| -FieldElement::from(t + 1))),
        ] {
            let mut checked = 0;
            for t in 0u64..64 {
                if checked == 4 {
                    break;
                }
                let x: FieldElement = x_of(t);
                let y_squared = x.square() * x - x.double() - x + b;
                let Some(y) = Option::<FieldElement>::from(y_squared.sqrt()) else { continue };
                let point = Option::<AffinePoint>::from(AffinePoint::from_coordinates(
                    &x.to_repr(),
                    &y.to_repr(),
                ))
                .expect("on the curve");
                let r = Scalar::reduce(&x.to_repr());
                assert!(r.to_repr().as_slice() < P_MINUS_N.as_slice(), "{family}");
                let z = Scalar::from(5u64 + t);
                // s = 1: u1 = z, u2 = r.
                let q = (ProjectivePoint::from(point) - ProjectivePoint::GENERATOR * z)
                    * r.invert_vartime().unwrap();
                let key = VerifyingKey::from_affine(q.to_affine()).expect("not the identity");
                let fixed = FixedKeyVerifier::new(&key);
                let digest: [u8; 32] = z.to_repr().into();
                let signature =
                    Signature::from_scalars(r.to_repr(), Scalar::ONE.to_repr()).unwrap();
                use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
                assert!(key.verify_prehash(&digest, &signature).is_ok(), "{family}: generic");
                assert!(fixed.verify_prehash(&digest, &signature), "{family}: ours");
                let wrong =
                    Signature::from_scalars((r + Scalar::ONE).to_repr(), Scalar::ONE.to_repr())
                        .unwrap();
                assert!(!fixed.verify_prehash(&digest, &wrong), "{family}");
                checked += 1;
            }
            assert_eq!(checked, 4, "{family}: about half of all x have a y");
        }
    }

    fn hex_bytes(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_r_s_pair_gets_the_generic_answer(r in any::<[u8; 32]>(), s in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..64)) {
            static KEY: std::sync::LazyLock<(SigningKey, FixedKeyVerifier)> =
                std::sync::LazyLock::new(|| {
                    let signing = SigningKey::from_slice(&[9u8; 32]).unwrap();
                    let fixed = FixedKeyVerifier::new(signing.verifying_key());
                    (signing, fixed)
                });
            if let Ok(signature) = Signature::from_scalars(r, s) {
                agree(KEY.0.verifying_key(), &KEY.1, &message, &signature);
            }
        }
    }
}
