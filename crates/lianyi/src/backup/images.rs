//! The imaging folder's instance files in a backup: the files the snapshot's index
//! names, packed as one part (`images.zst`) beside the database, so a backup restores
//! a study's pixels with its index rows.
//!
//! The part is a zstd stream (level 1: pixel data compresses little and is most of the
//! bytes) of entries `[path length u16][path][size u64][the file's bytes]`, paths
//! relative to the imaging folder. The seal authenticates every byte of it; the check
//! after a restore finds each indexed file at its path with the size the index gives,
//! and the manifest's count and total.
//!
//! Files are read after the database copy was taken. An instance file is written and
//! synced before its index row commits, so every row of the copy has its file; one the
//! folder no longer holds (removed by hand) is listed in the manifest as missing when
//! the backup was made, and named again by every verification.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use lianyi_store::backup::InstanceFile;
use serde_json::{Value, json};

use super::BackupError;

/// The part's name.
pub const PART: &str = "images.zst";

/// What was packed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packed {
    pub files: u64,
    pub bytes: u64,
    /// Indexed files the folder did not hold.
    pub missing: Vec<String>,
}

impl Packed {
    pub fn manifest(&self) -> Value {
        json!({"files": self.files, "bytes": self.bytes, "missing": self.missing})
    }
}

/// A reader giving the entries of `files` under `root`, one after another.
pub struct Packer {
    root: PathBuf,
    files: std::vec::IntoIter<InstanceFile>,
    head: std::io::Cursor<Vec<u8>>,
    body: Option<std::io::Take<std::fs::File>>,
    /// The size the entry's header announced, and what has been read of it.
    announced: u64,
    read: u64,
    packed: Packed,
}

impl Packer {
    pub fn new(root: &Path, files: Vec<InstanceFile>) -> Packer {
        Packer {
            root: root.to_path_buf(),
            files: files.into_iter(),
            head: std::io::Cursor::new(Vec::new()),
            body: None,
            announced: 0,
            read: 0,
            packed: Packed::default(),
        }
    }

    /// What was packed, once the reader is exhausted.
    pub fn packed(&self) -> &Packed {
        &self.packed
    }

    /// Starts the next file's entry; false when none is left.
    fn next_entry(&mut self) -> std::io::Result<bool> {
        for f in self.files.by_ref() {
            let file = match std::fs::File::open(self.root.join(&f.file)) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(file = %f.file, "an indexed instance file is missing from the imaging folder");
                    self.packed.missing.push(f.file);
                    continue;
                }
                Err(e) => return Err(e),
            };
            // The size now, not the index's: an instance sent again may have been
            // rewritten since the copy (the check compares with the restored index).
            let size = file.metadata()?.len();
            let path = f.file.as_bytes();
            let mut head = Vec::with_capacity(path.len() + 10);
            head.extend_from_slice(&(path.len() as u16).to_be_bytes());
            head.extend_from_slice(path);
            head.extend_from_slice(&size.to_be_bytes());
            self.head = std::io::Cursor::new(head);
            self.body = Some(file.take(size));
            self.announced = size;
            self.read = 0;
            self.packed.files += 1;
            self.packed.bytes += size;
            return Ok(true);
        }
        Ok(false)
    }
}

impl Read for Packer {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.head.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if let Some(body) = &mut self.body {
                let n = body.read(buf)?;
                if n > 0 {
                    self.read += n as u64;
                    return Ok(n);
                }
                if self.read < self.announced {
                    // Cut short while it was read: the entry would not parse.
                    return Err(std::io::Error::other("an instance file shrank while it was backed up"));
                }
                self.body = None;
            }
            if !self.next_entry()? {
                return Ok(0);
            }
        }
    }
}

/// Whether `path` stays inside the folder it is relative to.
fn contained(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// A writer taking the part's entries and writing each file under `root`.
pub struct Unpacker {
    root: PathBuf,
    head: Vec<u8>,
    body: Option<(std::io::BufWriter<std::fs::File>, u64)>,
    pub files: u64,
    pub bytes: u64,
}

impl Unpacker {
    pub fn new(root: &Path) -> Unpacker {
        Unpacker { root: root.to_path_buf(), head: Vec::new(), body: None, files: 0, bytes: 0 }
    }

    /// Ends the part: every entry must be whole; the files are synced.
    pub fn finish(mut self) -> std::io::Result<(u64, u64)> {
        if !self.head.is_empty() || self.body.as_ref().is_some_and(|(_, left)| *left > 0) {
            return Err(std::io::Error::other("the images part ends inside an entry"));
        }
        if let Some((w, _)) = self.body.take() {
            close(w)?;
        }
        Ok((self.files, self.bytes))
    }

    /// Opens the entry whose header is complete in `self.head`, if it is.
    fn open_entry(&mut self) -> std::io::Result<()> {
        if self.head.len() < 2 {
            return Ok(());
        }
        let len = u16::from_be_bytes([self.head[0], self.head[1]]) as usize;
        if self.head.len() < 2 + len + 8 {
            return Ok(());
        }
        let path = std::str::from_utf8(&self.head[2..2 + len])
            .map_err(|_| std::io::Error::other("the images part names a path that is not UTF-8"))?
            .to_string();
        if !contained(&path) {
            return Err(std::io::Error::other(format!("the images part names a path outside its folder: {path}")));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&self.head[2 + len..2 + len + 8]);
        let size = u64::from_be_bytes(size);
        let target = self.root.join(&path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?;
        self.head.clear();
        self.files += 1;
        self.body = Some((std::io::BufWriter::with_capacity(1 << 16, file), size));
        Ok(())
    }
}

fn close(w: std::io::BufWriter<std::fs::File>) -> std::io::Result<()> {
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

impl Write for Unpacker {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some((w, left)) = &mut self.body {
            if *left > 0 {
                let n = buf.len().min(*left as usize);
                w.write_all(&buf[..n])?;
                *left -= n as u64;
                self.bytes += n as u64;
                return Ok(n);
            }
            if let Some((w, _)) = self.body.take() {
                close(w)?;
            }
        }
        // The entry's header, a byte at a time until it is whole (headers are small).
        self.head.push(buf[0]);
        self.open_entry()?;
        Ok(1)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `part`'s entries (as `read` gives them into a writer) under `root`, which
/// must be empty or absent.
pub fn unpack_into(
    root: &Path,
    read: impl FnOnce(&mut dyn Write) -> Result<(), BackupError>,
) -> Result<(u64, u64), BackupError> {
    std::fs::create_dir_all(root)?;
    let mut unpacker = Unpacker::new(root);
    {
        let mut unzipped = zstd::stream::write::Decoder::new(&mut unpacker)?;
        read(&mut unzipped)?;
        unzipped.flush()?;
    }
    Ok(unpacker.finish()?)
}

/// Whether `dir` may receive restored instance files: absent or empty.
pub fn empty_or_absent(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// The check of restored instance files against the restored index and the manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagesChecked {
    pub files: u64,
    pub bytes: u64,
    /// What differs: (file, what).
    pub mismatches: Vec<(String, String)>,
    /// Files the manifest says were already missing when the backup was made.
    pub missing_at_backup: Vec<String>,
}

/// Checks the files under `root` against `index` (the restored database's rows) and
/// the manifest's `images` entry.
pub fn check(root: &Path, index: &[InstanceFile], manifest: &Value) -> ImagesChecked {
    let mut out = ImagesChecked::default();
    let listed = &manifest["images"];
    if listed.is_null() {
        if !index.is_empty() {
            out.mismatches.push((
                "(images)".into(),
                format!("the index names {} instance files, the backup holds none", index.len()),
            ));
        }
        return out;
    }
    let missing: HashSet<&str> = listed["missing"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for f in index {
        if missing.contains(f.file.as_str()) {
            out.missing_at_backup.push(f.file.clone());
            continue;
        }
        match std::fs::metadata(root.join(&f.file)) {
            Ok(m) if m.len() == f.bytes as u64 => {
                out.files += 1;
                out.bytes += m.len();
            }
            Ok(m) => {
                out.files += 1;
                out.bytes += m.len();
                out.mismatches.push((f.file.clone(), format!("{} bytes, the index says {}", m.len(), f.bytes)));
            }
            Err(_) => out.mismatches.push((f.file.clone(), "missing".into())),
        }
    }
    let (files, bytes) = (listed["files"].as_u64().unwrap_or(0), listed["bytes"].as_u64().unwrap_or(0));
    if (out.files, out.bytes) != (files, bytes) {
        out.mismatches.push((
            "(images)".into(),
            format!("{} files of {} bytes, the manifest says {files} of {bytes}", out.files, out.bytes),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, bytes: i64) -> InstanceFile {
        InstanceFile { file: file.into(), bytes }
    }

    #[test]
    fn packed_files_unpack_to_the_same_bytes_and_check_against_the_index() {
        let from = tempfile::tempdir().unwrap();
        let files = [("1.2/1.2.3/1.2.3.4.dcm", vec![7u8; 300_000]), ("1.2/1.2.3/1.2.3.5.dcm", b"DICM".to_vec())];
        for (f, bytes) in &files {
            std::fs::create_dir_all(from.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(from.path().join(f), bytes).unwrap();
        }
        let mut index: Vec<_> = files.iter().map(|(f, b)| entry(f, b.len() as i64)).collect();
        index.push(entry("1.2/1.2.3/1.2.3.6.dcm", 10));
        let mut packer = Packer::new(from.path(), index.clone());
        let mut stream = Vec::new();
        zstd::stream::read::Encoder::new(&mut packer, 1).unwrap().read_to_end(&mut stream).unwrap();
        let packed = packer.packed().clone();
        assert_eq!(packed.files, 2);
        assert_eq!(packed.bytes, 300_004);
        assert_eq!(packed.missing, ["1.2/1.2.3/1.2.3.6.dcm"]);

        let to = tempfile::tempdir().unwrap();
        let root = to.path().join("imaging");
        let (n, bytes) = unpack_into(&root, |w| {
            // In small pieces, as a sealed part's chunks arrive.
            for piece in stream.chunks(7) {
                w.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((n, bytes), (2, 300_004));
        for (f, b) in &files {
            assert_eq!(&std::fs::read(root.join(f)).unwrap(), b);
        }
        let manifest = json!({"images": packed.manifest()});
        let c = check(&root, &index, &manifest);
        assert!(c.mismatches.is_empty(), "{c:?}");
        assert_eq!(c.missing_at_backup, ["1.2/1.2.3/1.2.3.6.dcm"]);

        // A file lost after the restore, and one whose size differs from its row.
        std::fs::remove_file(root.join(files[1].0)).unwrap();
        index[0].bytes = 1;
        let c = check(&root, &index, &manifest);
        let named: Vec<&str> = c.mismatches.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(named, [files[0].0, files[1].0, "(images)"], "{c:?}");
        // A backup without the part, of an index with rows.
        assert_eq!(check(&root, &index, &json!({})).mismatches.len(), 1);
    }

    #[test]
    fn an_entry_cannot_leave_its_folder_or_end_short() {
        let to = tempfile::tempdir().unwrap();
        let mut stream = Vec::new();
        let path = b"../escape.dcm";
        stream.extend_from_slice(&(path.len() as u16).to_be_bytes());
        stream.extend_from_slice(path);
        stream.extend_from_slice(&4u64.to_be_bytes());
        stream.extend_from_slice(b"DICM");
        let mut u = Unpacker::new(to.path());
        let e = u.write_all(&stream).unwrap_err();
        assert!(e.to_string().contains("outside its folder"), "{e}");
        assert!(!to.path().parent().unwrap().join("escape.dcm").exists());

        let mut u = Unpacker::new(to.path());
        let mut short = Vec::new();
        short.extend_from_slice(&5u16.to_be_bytes());
        short.extend_from_slice(b"a.dcm");
        short.extend_from_slice(&10u64.to_be_bytes());
        short.extend_from_slice(b"DICM");
        u.write_all(&short).unwrap();
        assert!(u.finish().unwrap_err().to_string().contains("ends inside an entry"));
        assert!(contained("1.2/3.dcm") && !contained("/etc/x") && !contained("") && !contained("a/../../b"));
    }
}
