//! The directory name hash of hashed (htree) directories: half MD4 (`DX_HASH_HALF_MD4`), as
//! the kernel's `ext4fs_dirhash()` computes it, with the superblock's `s_hash_seed`.

use super::lo32;

/// `EXT4_HTREE_EOF_32BIT`: the hash value reserved for "end of directory".
const EXT4_HTREE_EOF_32BIT: u32 = 0x7FFF_FFFF;

/// How name bytes are widened before hashing: the superblock flags
/// `EXT2_FLAGS_SIGNED_HASH` / `EXT2_FLAGS_UNSIGNED_HASH` say which one a filesystem uses.
/// Images written here set the unsigned flag; the signed variant (what x86 builds of mke2fs
/// choose) exists to show that the flag matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharSign {
    /// Bytes as `signed char`.
    #[cfg(test)]
    Signed,
    /// Bytes as `unsigned char`.
    Unsigned,
}

/// The seed words: `s_hash_seed` read as four little-endian words, or MD4's initial state when
/// the seed is all zero.
fn seed_words(seed: &[u8; 16]) -> [u32; 4] {
    let words =
        [0, 4, 8, 12].map(|i| u32::from_le_bytes([seed[i], seed[i + 1], seed[i + 2], seed[i + 3]]));
    if words == [0; 4] {
        [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476]
    } else {
        words
    }
}

/// `str2hashbuf_signed` / `str2hashbuf_unsigned`: packs up to `4 * out.len()` bytes of `msg`
/// into words, big-endian within each word, padding with a word derived from the length.
fn str2hashbuf(msg: &[u8], sign: CharSign, out: &mut [u32]) {
    // `(__u32)len` as the kernel computes it; names are at most 255 bytes.
    let len = lo32(msg.len() as u64);
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let take = msg.len().min(out.len() * 4);
    let mut val = pad;
    let mut filled = 0;
    for (i, &byte) in msg[..take].iter().enumerate() {
        let c = match sign {
            #[cfg(test)]
            CharSign::Signed => i32::from(byte.cast_signed()).cast_unsigned(),
            CharSign::Unsigned => u32::from(byte),
        };
        val = c.wrapping_add(val << 8);
        if i % 4 == 3 {
            out[filled] = val;
            filled += 1;
            val = pad;
        }
    }
    if filled < out.len() {
        out[filled] = val;
        filled += 1;
    }
    for word in &mut out[filled..] {
        *word = pad;
    }
}

/// The reduced MD4 transform of `half_md4_transform()`: three rounds over eight words.
fn half_md4_transform(buf: &mut [u32; 4], input: &[u32; 8]) {
    const K1: u32 = 0;
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    let [mut a, mut b, mut c, mut d] = *buf;
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    // Round 1
    round!(f, a, b, c, d, input[0].wrapping_add(K1), 3);
    round!(f, d, a, b, c, input[1].wrapping_add(K1), 7);
    round!(f, c, d, a, b, input[2].wrapping_add(K1), 11);
    round!(f, b, c, d, a, input[3].wrapping_add(K1), 19);
    round!(f, a, b, c, d, input[4].wrapping_add(K1), 3);
    round!(f, d, a, b, c, input[5].wrapping_add(K1), 7);
    round!(f, c, d, a, b, input[6].wrapping_add(K1), 11);
    round!(f, b, c, d, a, input[7].wrapping_add(K1), 19);
    // Round 2
    round!(g, a, b, c, d, input[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, input[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, input[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, input[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, input[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, input[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, input[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, input[6].wrapping_add(K2), 13);
    // Round 3
    round!(h, a, b, c, d, input[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, input[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, input[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, input[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, input[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, input[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, input[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, input[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

/// The major hash of `name` (its low bit clear, as stored in htree index entries).
pub fn half_md4(name: &[u8], seed: &[u8; 16], sign: CharSign) -> u32 {
    let mut buf = seed_words(seed);
    let mut input = [0u32; 8];
    // Each round packs 32 bytes, with padding derived from the length still to go.
    let mut rest = name;
    while !rest.is_empty() {
        str2hashbuf(rest, sign, &mut input);
        half_md4_transform(&mut buf, &input);
        rest = &rest[rest.len().min(32)..];
    }
    let hash = buf[1] & !1;
    if hash == EXT4_HTREE_EOF_32BIT << 1 {
        (EXT4_HTREE_EOF_32BIT - 1) << 1
    } else {
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signedness_only_matters_above_ascii() {
        let seed = [3u8; 16];
        assert_eq!(
            half_md4(b"plain-name.txt", &seed, CharSign::Signed),
            half_md4(b"plain-name.txt", &seed, CharSign::Unsigned)
        );
        assert_ne!(
            half_md4("naïve".as_bytes(), &seed, CharSign::Signed),
            half_md4("naïve".as_bytes(), &seed, CharSign::Unsigned)
        );
    }

    #[test]
    fn long_names_use_every_chunk() {
        let seed = [0u8; 16];
        let a = [b'a'; 200];
        let mut b = a;
        b[199] = b'b';
        assert_ne!(
            half_md4(&a, &seed, CharSign::Unsigned),
            half_md4(&b, &seed, CharSign::Unsigned)
        );
        assert_eq!(half_md4(&a, &seed, CharSign::Unsigned) & 1, 0);
    }
}
