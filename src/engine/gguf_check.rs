//! A bounds-checked walk over a GGUF header before the real parser sees it.
//!
//! The parser allocates whatever lengths the header claims, so a damaged or hostile file
//! could ask for exabytes and abort the process. Here every length is checked against the
//! bytes actually left in the file, so such files get a clear error instead.

use std::io::{BufReader, Read};

const MAX_DIMS: u32 = 8;
const ALIGNMENT_KEY: &[u8; 17] = b"general.alignment";
const MAX_DEPTH: u32 = 4;

struct Walker<R: Read> {
    r: BufReader<R>,
    pos: u64,
    len: u64,
    wide: bool,
}

impl<R: Read> Walker<R> {
    /// Fails unless `n` more bytes exist; every read goes through this one check.
    fn room(&self, n: u64, what: &str) -> Result<(), String> {
        if n > self.len.saturating_sub(self.pos) {
            return Err(format!("{what} needs {n} bytes at offset {} but the file has {}", self.pos, self.len));
        }
        Ok(())
    }

    fn take(&mut self, n: u64, what: &str) -> Result<(), String> {
        self.room(n, what)?;
        std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink()).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        self.room(N as u64, what)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.bytes(what).map(u64::from_le_bytes)
    }

    /// Lengths and counts are 32-bit in GGUF v1, 64-bit later.
    fn count(&mut self, what: &str) -> Result<u64, String> {
        if self.wide { self.u64(what) } else { self.u32(what).map(u64::from) }
    }

    /// Reads a metadata key and says whether candle will read it as `general.alignment`:
    /// candle strips trailing NULs from strings, so "general.alignment\0\0" is that key too
    /// (found by the `gguf_header` fuzz target).
    fn key_is_alignment(&mut self) -> Result<bool, String> {
        let n = self.count("metadata key")?;
        let k = ALIGNMENT_KEY.len() as u64;
        if n < k {
            self.take(n, "metadata key")?;
            return Ok(false);
        }
        self.room(n, "metadata key")?;
        let mut same = self.bytes::<{ ALIGNMENT_KEY.len() }>("metadata key")? == *ALIGNMENT_KEY;
        let mut rest = n - k;
        let mut buf = [0u8; 256];
        while rest > 0 {
            let m = rest.min(buf.len() as u64) as usize;
            self.r.read_exact(&mut buf[..m]).map_err(|e| e.to_string())?;
            self.pos += m as u64;
            rest -= m as u64;
            same &= buf[..m].iter().all(|&b| b == 0);
        }
        Ok(same)
    }

    fn string(&mut self, what: &str) -> Result<(), String> {
        let n = self.count(what)?;
        self.take(n, what)
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<(), String> {
        match ty {
            0 | 1 | 7 => self.take(1, "value"),
            2 | 3 => self.take(2, "value"),
            4 | 5 | 6 => self.take(4, "value"),
            10..=12 => self.take(8, "value"),
            8 => self.string("string value"),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err("arrays nested too deeply".into());
                }
                let elem = self.u32("array type")?;
                let n = self.count("array length")?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4 | 5 | 6 => 4,
                    8..=12 => 8,
                    t => return Err(format!("unknown array element type {t}")),
                };
                if n.saturating_mul(min) > self.len.saturating_sub(self.pos) {
                    return Err(format!("an array claims {n} elements but the file has {} bytes left", self.len - self.pos));
                }
                for _ in 0..n {
                    self.value(elem, depth + 1)?;
                }
                Ok(())
            }
            t => Err(format!("unknown value type {t}")),
        }
    }
}

/// Checks the GGUF header of `r` (a file of `len` bytes) without trusting its lengths.
pub fn check_header<R: Read>(r: R, len: u64) -> Result<(), String> {
    let mut w = Walker { r: BufReader::new(r), pos: 0, len, wide: true };
    if w.u32("magic")? != u32::from_le_bytes(*b"GGUF") {
        return Err("no GGUF magic".into());
    }
    let version = w.u32("version")?;
    if !(1..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version}"));
    }
    w.wide = version > 1;
    let tensors = w.count("tensor count")?;
    let kvs = w.count("metadata count")?;
    // The smallest metadata entry and tensor entry each take more than 8 bytes.
    if tensors.saturating_add(kvs).saturating_mul(8) > len {
        return Err(format!("the header claims {tensors} tensors and {kvs} metadata entries, more than the file can hold"));
    }
    for _ in 0..kvs {
        let alignment = w.key_is_alignment()?;
        let ty = w.u32("metadata type")?;
        // candle divides by the alignment when it is an integer of up to 32 bits.
        let width = match ty {
            0 | 1 => 1,
            2 | 3 => 2,
            4 | 5 => 4,
            _ => 0,
        };
        if alignment && width > 0 {
            let mut v = [0u8; 4];
            for b in v.iter_mut().take(width) {
                *b = w.bytes::<1>("general.alignment")?[0];
            }
            if u32::from_le_bytes(v) == 0 {
                return Err("general.alignment is 0".into());
            }
        } else {
            w.value(ty, 0)?;
        }
    }
    for _ in 0..tensors {
        w.string("tensor name")?;
        let dims = w.u32("tensor rank")?;
        if dims == 0 || dims > MAX_DIMS {
            return Err(format!("a tensor has rank {dims}"));
        }
        for _ in 0..dims {
            w.count("tensor dimension")?;
        }
        w.u32("tensor type")?;
        w.u64("tensor offset")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kvs: &[u8], n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b.extend(kvs);
        b
    }

    fn string(s: &str) -> Vec<u8> {
        let mut b = (s.len() as u64).to_le_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        // A key claiming 2^62 bytes.
        let mut kv = (1u64 << 62).to_le_bytes().to_vec();
        kv.extend(b"abc");
        let b = header(&kv, 1);
        assert!(check_header(&b[..], b.len() as u64).unwrap_err().contains("needs"));
        // An array claiming 2^40 u64 elements.
        let mut kv = string("k");
        kv.extend(9u32.to_le_bytes());
        kv.extend(10u32.to_le_bytes());
        kv.extend((1u64 << 40).to_le_bytes());
        let b = header(&kv, 1);
        assert!(check_header(&b[..], b.len() as u64).unwrap_err().contains("array claims"));
        // Absurd counts.
        let b = header(&[], u64::MAX / 2);
        assert!(check_header(&b[..], b.len() as u64).unwrap_err().contains("more than the file can hold"));
    }

    #[test]
    fn a_valid_header_passes() {
        let mut kv = string("general.architecture");
        kv.extend(8u32.to_le_bytes());
        kv.extend(string("llama"));
        let b = header(&kv, 1);
        check_header(&b[..], b.len() as u64).unwrap();
        assert!(check_header(&b[..b.len() - 2], b.len() as u64 - 2).is_err());
    }

    /// Found by the `gguf_header` fuzz target: candle divided by a zero alignment.
    #[test]
    fn a_zero_alignment_is_refused_before_candle_divides_by_it() {
        let mut kv = string("general.alignment");
        kv.extend(4u32.to_le_bytes());
        kv.extend(0u32.to_le_bytes());
        let b = header(&kv, 1);
        assert_eq!(check_header(&b[..], b.len() as u64).unwrap_err(), "general.alignment is 0");
        let crash = include_bytes!("../../fuzz/corpus/gguf_header/regression-zero-alignment");
        assert!(crate::engine::inspect_gguf(crash).is_err());
        let mut kv = string("general.alignment");
        kv.extend(4u32.to_le_bytes());
        kv.extend(32u32.to_le_bytes());
        let b = header(&kv, 1);
        assert!(check_header(&b[..], b.len() as u64).is_ok());
    }

    /// Found by the `gguf_header` fuzz target (CI, session 20): candle strips trailing NULs
    /// from keys, so a zero alignment hid behind "general.alignment\0...". A key that only
    /// starts with the name is another key, and its zero passes.
    #[test]
    fn a_zero_alignment_behind_trailing_nuls_is_refused() {
        let zero_under = |key: &[u8]| {
            let mut kv = (key.len() as u64).to_le_bytes().to_vec();
            kv.extend(key);
            kv.extend(0u32.to_le_bytes());
            kv.push(0);
            header(&kv, 1)
        };
        let b = zero_under(b"general.alignment\0\0\0");
        assert_eq!(check_header(&b[..], b.len() as u64).unwrap_err(), "general.alignment is 0");
        let b = zero_under(b"general.alignment\0x");
        assert!(check_header(&b[..], b.len() as u64).is_ok());
        let crash = include_bytes!("../../fuzz/corpus/gguf_header/regression-alignment-nul-key");
        let err = crate::engine::inspect_gguf(crash).err().expect("the crash input is refused");
        assert!(err.to_string().contains("general.alignment is 0"), "{err}");
    }
}
