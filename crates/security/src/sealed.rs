//! The backup file: named parts (the manifest, the data key file, the database)
//! encrypted in 1 MiB chunks with AES-256-GCM or SM4-GCM under a backup key kept apart
//! from the data keys, so the file restores with the backup key alone.
//!
//! Layout: `LIANYI-BACKUP 1\n`, the header's length (u32, big-endian) and the header
//! (JSON, readable without the key: what, when, which cipher, and the key's check
//! value), then frames `[kind u8][name length u16][name][index u64][length u32]
//! [ciphertext]`. Kind 1 is a chunk of a part, 2 its last chunk, 3 the end of the
//! file, whose sealed content lists every part with its size and SHA-256. Each frame's
//! nonce is the file's random prefix and the frame's place in the file, and its
//! associated data binds the header, the kind, the part and the chunk index — so a
//! flipped byte, a frame moved, dropped or taken from another file fails to open and
//! is named by part and chunk, and a file cut short (a backup killed mid-way) has no
//! end frame and is never taken as whole.

use std::io::{Read, Write};
use std::path::Path;

use sha2::Digest;
use zeroize::Zeroizing;

use crate::crypto::{CipherAlg, open, seal};

const MAGIC: &[u8] = b"LIANYI-BACKUP 1\n";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 20;
const DATA: u8 = 1;
const LAST: u8 = 2;
const END: u8 = 3;
/// The end frame's name.
const END_NAME: &str = "(end)";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a Lianyi backup file (it does not start with the backup signature)")]
    NotABackup,
    #[error("the backup's header is damaged: {0}")]
    Header(String),
    #[error(
        "this backup was made with another backup key (the file's key check is {file}, this key's is {ours}); \
         use the backup key that was in force when it was made"
    )]
    WrongKey { file: String, ours: String },
    #[error("the backup is damaged: part {part}, chunk {chunk} does not decrypt (altered or corrupted)")]
    Damaged { part: String, chunk: u64 },
    #[error("the backup is incomplete: it ends {0} (an interrupted backup is never whole)")]
    Incomplete(String),
    #[error("backup key: {0}")]
    Key(String),
    #[error("encryption failed")]
    Encrypt,
}

/// The key backups are sealed with: `aes-256-gcm:HEX` or `sm4-gcm:HEX` on one line.
pub struct BackupKey {
    alg: CipherAlg,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey({}, check {})", self.alg.name(), self.check())
    }
}

impl BackupKey {
    /// A fresh random key.
    pub fn generate(alg: CipherAlg) -> Result<BackupKey, SealError> {
        let mut key = Zeroizing::new(vec![0u8; alg.key_len()]);
        getrandom::fill(&mut key).map_err(|e| SealError::Key(e.to_string()))?;
        Ok(BackupKey { alg, key })
    }

    /// Reads `alg:hex`.
    pub fn parse(text: &str) -> Result<BackupKey, SealError> {
        let bad = || SealError::Key("expected one line aes-256-gcm:HEX or sm4-gcm:HEX".into());
        let (alg, hex_key) = text.trim().split_once(':').ok_or_else(bad)?;
        let alg = CipherAlg::parse(alg).ok_or_else(bad)?;
        let key = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| bad())?);
        if key.len() != alg.key_len() {
            return Err(SealError::Key(format!("a {} key is {} bytes", alg.name(), alg.key_len())));
        }
        Ok(BackupKey { alg, key })
    }

    /// The key as its file holds it.
    pub fn to_line(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}:{}", self.alg.name(), hex::encode(&*self.key)))
    }

    /// A short value that tells keys apart without revealing them.
    pub fn check(&self) -> String {
        crate::secrets::hmac_sha256_hex(&self.key, b"lianyi backup key check")[..16].to_string()
    }

    /// Reads the key file at `path`, or creates it (owner-only) with a new key of
    /// `alg`; returns the key and whether it was created.
    pub fn load_or_create(path: &Path, alg: CipherAlg) -> Result<(BackupKey, bool), SealError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((BackupKey::parse(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = BackupKey::generate(alg)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(path)?;
                f.write_all(key.to_line().as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()?;
                Ok((key, true))
            }
            Err(e) => Err(SealError::Key(format!("{}: {e}", path.display()))),
        }
    }
}

fn aad(header_digest: &[u8], kind: u8, name: &str, index: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(header_digest.len() + name.len() + 16);
    a.extend_from_slice(header_digest);
    a.push(kind);
    a.extend_from_slice(&(name.len() as u16).to_be_bytes());
    a.extend_from_slice(name.as_bytes());
    a.extend_from_slice(&index.to_be_bytes());
    a
}

fn nonce(prefix: &[u8; 4], frame: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(prefix);
    n[4..].copy_from_slice(&frame.to_be_bytes());
    n
}

/// A part's size and SHA-256, as the end frame lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartSum {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes a backup file.
pub struct SealedWriter<W: Write> {
    out: W,
    alg: CipherAlg,
    key: Zeroizing<Vec<u8>>,
    prefix: [u8; 4],
    header_digest: Vec<u8>,
    frame: u64,
    parts: Vec<PartSum>,
}

impl<W: Write> SealedWriter<W> {
    /// Starts the file with `header` (a JSON object, stored in the clear; the cipher,
    /// the key check and the nonce prefix are added to it).
    pub fn new(mut out: W, key: &BackupKey, mut header: serde_json::Value) -> Result<Self, SealError> {
        let mut prefix = [0u8; 4];
        getrandom::fill(&mut prefix).map_err(|e| SealError::Key(e.to_string()))?;
        header["cipher"] = key.alg.name().into();
        header["keyCheck"] = key.check().into();
        header["noncePrefix"] = hex::encode(prefix).into();
        let bytes = serde_json::to_vec(&header).map_err(|e| SealError::Header(e.to_string()))?;
        out.write_all(MAGIC)?;
        out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        out.write_all(&bytes)?;
        Ok(SealedWriter {
            out,
            alg: key.alg,
            key: key.key.clone(),
            prefix,
            header_digest: sha2::Sha256::digest(&bytes).to_vec(),
            frame: 0,
            parts: Vec::new(),
        })
    }

    fn frame(&mut self, kind: u8, name: &str, index: u64, plain: &[u8]) -> Result<(), SealError> {
        let ct = seal(
            self.alg,
            &self.key,
            &nonce(&self.prefix, self.frame),
            plain,
            &aad(&self.header_digest, kind, name, index),
        )
        .map_err(|_| SealError::Encrypt)?;
        self.out.write_all(&[kind])?;
        self.out.write_all(&(name.len() as u16).to_be_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&index.to_be_bytes())?;
        self.out.write_all(&(ct.len() as u32).to_be_bytes())?;
        self.out.write_all(&ct)?;
        self.frame += 1;
        Ok(())
    }

    /// Adds part `name` with everything `from` gives; `progress` hears the bytes so far.
    pub fn part(&mut self, name: &str, mut from: impl Read, mut progress: impl FnMut(u64)) -> Result<(), SealError> {
        let mut digest = sha2::Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut index = 0u64;
        let mut total = 0u64;
        // One chunk is held back so the last can be marked as such.
        let mut filled = read_full(&mut from, &mut buf)?;
        loop {
            let mut next = vec![0u8; CHUNK];
            let more = if filled == CHUNK { read_full(&mut from, &mut next)? } else { 0 };
            let last = more == 0;
            digest.update(&buf[..filled]);
            total += filled as u64;
            self.frame(if last { LAST } else { DATA }, name, index, &buf[..filled])?;
            progress(total);
            if last {
                break;
            }
            index += 1;
            buf = next;
            filled = more;
        }
        self.parts.push(PartSum { name: name.to_string(), bytes: total, sha256: hex::encode(digest.finalize()) });
        Ok(())
    }

    /// Writes the end frame and flushes; returns the output.
    pub fn finish(mut self) -> Result<W, SealError> {
        let list: Vec<serde_json::Value> = self
            .parts
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "bytes": p.bytes, "sha256": p.sha256}))
            .collect();
        let plain = serde_json::to_vec(&list).map_err(|e| SealError::Header(e.to_string()))?;
        self.frame(END, END_NAME, 0, &plain)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn read_full(from: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a backup file, part by part.
pub struct SealedReader<R: Read> {
    input: R,
    alg: CipherAlg,
    key: Zeroizing<Vec<u8>>,
    prefix: [u8; 4],
    header_digest: Vec<u8>,
    frame: u64,
    /// A frame read ahead: (kind, name, index, ciphertext).
    ahead: Option<(u8, String, u64, Vec<u8>)>,
    /// What was read so far, for the end frame's check.
    seen: Vec<PartSum>,
    /// The part being read, for error messages.
    current: String,
}

/// Reads the header of a backup file without a key.
pub fn read_header(input: &mut impl Read) -> Result<(serde_json::Value, Vec<u8>), SealError> {
    let mut magic = [0u8; MAGIC.len()];
    if read_full(input, &mut magic)? < MAGIC.len() || magic != MAGIC {
        return Err(SealError::NotABackup);
    }
    let mut len = [0u8; 4];
    if read_full(input, &mut len)? < 4 {
        return Err(SealError::Incomplete("inside its header".into()));
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(SealError::Header(format!("a header of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    if read_full(input, &mut bytes)? < len {
        return Err(SealError::Incomplete("inside its header".into()));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| SealError::Header(e.to_string()))?;
    Ok((header, bytes))
}

impl<R: Read> SealedReader<R> {
    /// Reads the header and checks that `key` is the file's.
    pub fn open(mut input: R, key: &BackupKey) -> Result<(Self, serde_json::Value), SealError> {
        let (header, bytes) = read_header(&mut input)?;
        let text = |k: &str| header[k].as_str().map(str::to_string).ok_or_else(|| SealError::Header(format!("no {k}")));
        let alg = CipherAlg::parse(&text("cipher")?).ok_or_else(|| SealError::Header("an unknown cipher".into()))?;
        let file_check = text("keyCheck")?;
        if file_check != key.check() || alg != key.alg {
            return Err(SealError::WrongKey { file: file_check, ours: key.check() });
        }
        let prefix: [u8; 4] = hex::decode(text("noncePrefix")?)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| SealError::Header("a bad nonce prefix".into()))?;
        let reader = SealedReader {
            input,
            alg,
            key: key.key.clone(),
            prefix,
            header_digest: sha2::Sha256::digest(&bytes).to_vec(),
            frame: 0,
            ahead: None,
            seen: Vec::new(),
            current: "(start)".into(),
        };
        Ok((reader, header))
    }

    fn raw_frame(&mut self) -> Result<(u8, String, u64, Vec<u8>), SealError> {
        if let Some(f) = self.ahead.take() {
            return Ok(f);
        }
        let cut = |at: &str| SealError::Incomplete(format!("{at} (after part {})", self.current));
        let mut head = [0u8; 3];
        if read_full(&mut self.input, &mut head)? < 3 {
            return Err(cut("before its end frame"));
        }
        let name_len = u16::from_be_bytes([head[1], head[2]]) as usize;
        let mut name = vec![0u8; name_len];
        let mut rest = [0u8; 12];
        if read_full(&mut self.input, &mut name)? < name_len || read_full(&mut self.input, &mut rest)? < 12 {
            return Err(cut("inside a frame"));
        }
        let index = u64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(rest[8..].try_into().unwrap_or_default()) as usize;
        let name = String::from_utf8_lossy(&name).into_owned();
        if len > CHUNK + 64 {
            return Err(SealError::Damaged { part: name, chunk: index });
        }
        let mut ct = vec![0u8; len];
        if read_full(&mut self.input, &mut ct)? < len {
            return Err(cut("inside a frame"));
        }
        Ok((head[0], name, index, ct))
    }

    fn decrypt(&mut self, kind: u8, name: &str, index: u64, ct: &[u8]) -> Result<Vec<u8>, SealError> {
        let plain = open(
            self.alg,
            &self.key,
            &nonce(&self.prefix, self.frame),
            ct,
            &aad(&self.header_digest, kind, name, index),
        )
        .map_err(|_| SealError::Damaged { part: name.to_string(), chunk: index })?;
        self.frame += 1;
        Ok(plain)
    }

    /// The name of the next part, or `None` at the end frame (whose list of parts is
    /// then checked against what was read).
    pub fn next_part(&mut self) -> Result<Option<String>, SealError> {
        let (kind, name, index, ct) = self.raw_frame()?;
        if kind == END {
            let plain = self.decrypt(kind, &name, index, &ct)?;
            let list: Vec<serde_json::Value> =
                serde_json::from_slice(&plain).map_err(|_| SealError::Damaged { part: name.clone(), chunk: 0 })?;
            let listed: Vec<PartSum> = list
                .iter()
                .map(|p| PartSum {
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    bytes: p["bytes"].as_u64().unwrap_or_default(),
                    sha256: p["sha256"].as_str().unwrap_or_default().to_string(),
                })
                .collect();
            if listed != self.seen {
                return Err(SealError::Incomplete("with parts that differ from its list".into()));
            }
            return Ok(None);
        }
        self.current = name.clone();
        self.ahead = Some((kind, name.clone(), index, ct));
        Ok(Some(name))
    }

    /// Decrypts the current part into `sink`; `progress` hears the bytes so far.
    pub fn read_part(&mut self, sink: &mut dyn Write, mut progress: impl FnMut(u64)) -> Result<PartSum, SealError> {
        let name = self.current.clone();
        let mut digest = sha2::Sha256::new();
        let mut total = 0u64;
        let mut expected = 0u64;
        loop {
            let (kind, frame_name, index, ct) = self.raw_frame()?;
            if frame_name != name || index != expected || !(kind == DATA || kind == LAST) {
                return Err(SealError::Damaged { part: name, chunk: expected });
            }
            let plain = self.decrypt(kind, &frame_name, index, &ct)?;
            digest.update(&plain);
            sink.write_all(&plain)?;
            total += plain.len() as u64;
            progress(total);
            if kind == LAST {
                break;
            }
            expected += 1;
        }
        let sum = PartSum { name, bytes: total, sha256: hex::encode(digest.finalize()) };
        self.seen.push(sum.clone());
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &BackupKey, parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = SealedWriter::new(Vec::new(), key, serde_json::json!({"what": "test"})).unwrap();
        for (name, data) in parts {
            w.part(name, &data[..], |_| {}).unwrap();
        }
        w.finish().unwrap()
    }

    fn unsealed(key: &BackupKey, file: &[u8]) -> Result<Vec<(String, Vec<u8>)>, SealError> {
        let (mut r, header) = SealedReader::open(file, key)?;
        assert_eq!(header["what"], "test");
        let mut out = Vec::new();
        while let Some(name) = r.next_part()? {
            let mut data = Vec::new();
            r.read_part(&mut data, |_| {})?;
            out.push((name, data));
        }
        Ok(out)
    }

    #[test]
    fn parts_round_trip_with_both_ciphers_and_any_size() {
        for alg in [CipherAlg::Aes256Gcm, CipherAlg::Sm4Gcm] {
            let key = BackupKey::generate(alg).unwrap();
            let big: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
            let parts = vec![("manifest", b"{}".to_vec()), ("empty", Vec::new()), ("database", big.clone())];
            let file = sealed(&key, &parts);
            let back = unsealed(&key, &file).unwrap();
            assert_eq!(back, parts.iter().map(|(n, d)| (n.to_string(), d.clone())).collect::<Vec<_>>());
            assert!(!file.windows(64).any(|w| w == &big[1000..1064]), "the data is not in the clear");
            let again = BackupKey::parse(&key.to_line()).unwrap();
            assert_eq!(again.check(), key.check());
        }
    }

    #[test]
    fn a_flipped_byte_a_cut_file_and_another_key_are_each_named() {
        let key = BackupKey::generate(CipherAlg::Aes256Gcm).unwrap();
        let big: Vec<u8> = vec![7u8; CHUNK * 3];
        let file = sealed(&key, &[("keys", b"data k1 aes".to_vec()), ("database", big)]);
        // A byte in the database's third chunk.
        let mut flipped = file.clone();
        let at = file.len() - 1;
        flipped[at] ^= 1;
        let e = unsealed(&key, &flipped).unwrap_err();
        assert!(matches!(&e, SealError::Damaged { part, .. } if part == "(end)"), "{e}");
        let mut flipped = file.clone();
        let at = file.len() / 2;
        flipped[at] ^= 0x40;
        let e = unsealed(&key, &flipped).unwrap_err().to_string();
        assert!(e.contains("part database, chunk 1"), "{e}");
        // Cut short, as a killed backup leaves it.
        let e = unsealed(&key, &file[..file.len() - 100]).unwrap_err();
        assert!(matches!(e, SealError::Incomplete(_)), "{e}");
        let e = unsealed(&key, &file[..file.len() / 2]).unwrap_err().to_string();
        assert!(e.contains("incomplete"), "{e}");
        // Another key.
        let other = BackupKey::generate(CipherAlg::Aes256Gcm).unwrap();
        let e = unsealed(&other, &file).unwrap_err();
        assert!(matches!(e, SealError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("another backup key"));
        // Not a backup at all.
        assert!(matches!(unsealed(&key, b"SQLite format 3\0").unwrap_err(), SealError::NotABackup));
        assert!(BackupKey::parse("rot13:abcd").is_err());
        assert!(BackupKey::parse("sm4-gcm:00").unwrap_err().to_string().contains("16 bytes"));
    }
}
