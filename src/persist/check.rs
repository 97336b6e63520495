//! `reredis check-aof [--fix] FILE`: checks an append-only log record by record and, with
//! `--fix`, cuts it at the end of the last good record (as `redis-check-aof --fix`). Also checks a
//! snapshot file (`reredis check-aof dump.rdb` recognises it by its magic) without fixing it.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use super::{AofEnd, scan_aof, validate_payload};

const USAGE: &str = "Usage: reredis check-aof [--fix] <file>";

pub fn main(args: &[OsString]) -> ExitCode {
    let mut fix = false;
    let mut file = None;
    for a in args {
        if a == "--fix" {
            fix = true;
        } else if file.is_none() {
            file = Some(a.clone());
        } else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(file) = file else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match check(Path::new(&file), fix) {
        Ok(report) => {
            println!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("reredis check-aof: {}: {e}", Path::new(&file).display());
            ExitCode::from(1)
        }
    }
}

pub struct Report {
    /// True when the file is (now) good.
    pub ok: bool,
    pub text: String,
}

pub fn check(path: &Path, fix: bool) -> std::io::Result<Report> {
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let _ = f.read(&mut head)?;
    }
    if &head == super::snapshot::MAGIC {
        return check_snapshot(path);
    }
    let len = std::fs::metadata(path)?.len();
    let (n, end) = scan_aof(path, |p, _| validate_payload(p))?;
    let (offset, what) = match end {
        AofEnd::Clean => {
            return Ok(Report {
                ok: true,
                text: format!("AOF {} is valid: {n} records, {len} bytes", path.display()),
            });
        }
        AofEnd::Truncated(at) => (at, "the last record is incomplete (truncated)".to_string()),
        AofEnd::Corrupt(at, why) => (at, why),
    };
    let lost = len - offset;
    let mut text = format!(
        "AOF {} is not valid at offset {offset}: {what}. {n} good records before it; {lost} bytes from there on",
        path.display()
    );
    if offset < super::aof::MAGIC.len() as u64 {
        text.push_str("\nNot a reredis append-only file: nothing to fix.");
        return Ok(Report { ok: false, text });
    }
    if !fix {
        text.push_str(&format!(
            "\nRun `reredis check-aof --fix {}` to cut the file at offset {offset} (the {lost} bytes after it are lost).",
            path.display()
        ));
        return Ok(Report { ok: false, text });
    }
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(offset)?;
    f.sync_all()?;
    text.push_str(&format!(
        "\nSuccessfully truncated AOF {} to {offset} bytes ({lost} bytes discarded).",
        path.display()
    ));
    Ok(Report { ok: true, text })
}

fn check_snapshot(path: &Path) -> std::io::Result<Report> {
    let store = crate::store::Store::new(16, Default::default());
    let lim = crate::store::rdb::Limits {
        hash: store.hash_limits.get(),
        set_max_intset_entries: store.set_limits.get(),
        zset: crate::store::zset::ZLimits {
            entries: 128,
            value: 64,
        },
        list_fill: -2,
    };
    Ok(
        match super::snapshot::load_file(path, &store, &lim, None, &|_| {}) {
            Ok(loaded) => Report {
                ok: true,
                text: format!("snapshot {} is valid: {} keys", path.display(), loaded.keys),
            },
            Err(e) => Report {
                ok: false,
                text: format!("snapshot is not valid: {e} (snapshots cannot be repaired)"),
            },
        },
    )
}
