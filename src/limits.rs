//! `/proc/sys/kernel/sem`: parse, format, write, and the kernel's SEMMNI cap.
//!
//! Parsers take `&str` so they are tested without the kernel; the thin
//! wrappers at the bottom add the path.

use crate::error::Error;
use std::fmt;
use std::path::Path;

pub const SEM_PATH: &str = "/proc/sys/kernel/sem";

/// IPCMNI: the kernel refuses a larger SEMMNI (ipc/ipc_sysctl.c).
pub const IPCMNI: u32 = 1 << 15;
/// IPCMNI with the `ipcmni_extend` boot option.
pub const IPCMNI_EXTENDED: u32 = 1 << 24;

/// The four fields of `/proc/sys/kernel/sem`, in the file's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Max semaphores per set.
    pub semmsl: u32,
    /// Max semaphores system-wide.
    pub semmns: u32,
    /// Max operations per semop call.
    pub semopm: u32,
    /// Max semaphore sets.
    pub semmni: u32,
}

impl Limits {
    /// Field by field, the larger of the two: a raise never lowers a field
    /// that someone else raised meanwhile.
    pub fn max(&self, other: &Limits) -> Limits {
        Limits {
            semmsl: self.semmsl.max(other.semmsl),
            semmns: self.semmns.max(other.semmns),
            semopm: self.semopm.max(other.semopm),
            semmni: self.semmni.max(other.semmni),
        }
    }

    /// Whether every field is at least `other`'s.
    pub fn covers(&self, other: &Limits) -> bool {
        self.max(other) == *self
    }
}

impl fmt::Display for Limits {
    /// The format the kernel reads and `sysctl.d` expects: four numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.semmsl, self.semmns, self.semopm, self.semmni
        )
    }
}

/// Parses the file's content: exactly four non-negative 32-bit integers
/// (the kernel stores them as C `int`). Anything else is bad input (exit 2:
/// nothing is changed on a host whose limits semprep cannot understand).
pub fn parse(text: &str) -> Result<Limits, Error> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 4 {
        return Err(Error::usage(format!(
            "expected 4 numbers (SEMMSL SEMMNS SEMOPM SEMMNI), found {}: {:?}",
            fields.len(),
            text.trim()
        )));
    }
    let mut v = [0u32; 4];
    for (slot, (field, name)) in v
        .iter_mut()
        .zip(fields.iter().zip(["SEMMSL", "SEMMNS", "SEMOPM", "SEMMNI"]))
    {
        *slot = field
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= i32::MAX as u32)
            .ok_or_else(|| {
                Error::usage(format!(
                    "{name} is {field:?}, expected a number from 0 to {}",
                    i32::MAX
                ))
            })?;
    }
    Ok(Limits {
        semmsl: v[0],
        semmns: v[1],
        semopm: v[2],
        semmni: v[3],
    })
}

/// The largest SEMMNI this kernel accepts, from its command line.
pub fn kernel_max_semmni(cmdline: &str) -> u32 {
    if cmdline.split_whitespace().any(|w| w == "ipcmni_extend") {
        IPCMNI_EXTENDED
    } else {
        IPCMNI
    }
}

/// Reads and parses the file. Content the kernel should never produce is
/// bad input (`parse`); an unreadable file is semprep's own failure.
pub fn read(path: &Path) -> Result<Limits, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| e.context(format_args!("malformed {}", path.display())))
}

/// Writes all four fields in one `write`, so the kernel applies them
/// together (a short write would change only the fields it names).
pub fn write(path: &Path, limits: &Limits) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(format!("{limits}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_formats() {
        let l = Limits {
            semmsl: 32000,
            semmns: 1024000000,
            semopm: 500,
            semmni: 32000,
        };
        for text in [
            "32000\t1024000000\t500\t32000\n",
            " 32000 1024000000 500 32000",
        ] {
            assert_eq!(parse(text), Ok(l), "{text:?}");
        }
        assert_eq!(parse(&l.to_string()), Ok(l));
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            ("", "found 0"),
            ("250 32000 32", "found 3"),
            ("250 32000 32 128 9", "found 5"),
            ("250 x 32 128", "SEMMNS is \"x\""),
            ("250 32000 32 -1", "SEMMNI is \"-1\""),
            ("250 32000 32 2147483648", "SEMMNI is \"2147483648\""),
            ("250 32000 99999999999 128", "SEMOPM is"),
            ("250 32000 32 1.5", "SEMMNI is \"1.5\""),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn field_by_field_max_and_cover() {
        let l = |a, b, c, d| Limits {
            semmsl: a,
            semmns: b,
            semopm: c,
            semmni: d,
        };
        // (current, target, max, current covers target)
        let cases = [
            (
                l(250, 32000, 32, 128),
                l(250, 32000, 32, 256),
                l(250, 32000, 32, 256),
                false,
            ),
            (
                l(300, 32000, 40, 32000),
                l(250, 32000, 32, 20020),
                l(300, 32000, 40, 32000),
                true,
            ),
            (
                l(300, 1000, 40, 100),
                l(250, 2000, 32, 200),
                l(300, 2000, 40, 200),
                false,
            ),
            (
                l(0, 32000, 0, 128),
                l(250, 32000, 32, 128),
                l(250, 32000, 32, 128),
                false,
            ),
            (l(1, 2, 3, 4), l(1, 2, 3, 4), l(1, 2, 3, 4), true),
        ];
        for (cur, target, max, covers) in cases {
            assert_eq!(cur.max(&target), max, "{cur} max {target}");
            assert_eq!(cur.covers(&target), covers, "{cur} covers {target}");
        }
    }

    #[test]
    fn kernel_max_follows_ipcmni_extend() {
        assert_eq!(kernel_max_semmni("ro quiet"), 32768);
        assert_eq!(kernel_max_semmni("ro ipcmni_extend quiet\n"), 1 << 24);
        assert_eq!(kernel_max_semmni("ipcmni_extended"), 32768);
    }
}
