//! The demo appliance's root filesystem: Debian's static busybox (package
//! `busybox-static`) with a symlink per applet, minimal /etc and a web page.

use std::fs::{self, DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Where Debian's busybox-static installs busybox (`/bin` is `/usr/bin` on merged-usr systems).
const CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nnobody:x:65534:\n";
const INDEX_HTML: &str = "<!doctype html>\n<title>supervisor demo</title>\n<h1>Hello from the supervisor demo appliance</h1>\n";

/// The host's busybox; it must be statically linked to run inside an image.
pub fn find() -> Result<PathBuf, Error> {
    let path = CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Busybox("not found in /bin or /usr/bin: install Debian's busybox-static".into())
        })?;
    let binary = fs::read(path).map_err(|e| Error::io(path, e))?;
    if !is_static_elf(&binary) {
        return Err(Error::Busybox(format!(
            "{} is dynamically linked: install busybox-static instead of busybox",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// Builds a busybox root filesystem in `dir` (created if missing):
/// `bin/busybox` and its applets, `etc/passwd` and `etc/group` (root, nobody),
/// empty `etc/hosts` and `etc/resolv.conf` (where a service on a network gets
/// its own, even with a read-only root filesystem), empty `proc dev sys tmp
/// root` and `www/index.html`.
pub fn build(dir: &Path) -> Result<(), Error> {
    let busybox = find()?;
    let mkdir = |rel: &str, mode: u32| -> Result<(), Error> {
        let path = dir.join(rel);
        DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        // Explicit: the umask must not decide what the image looks like.
        fs::set_permissions(&path, Permissions::from_mode(mode)).map_err(|e| Error::io(&path, e))
    };
    mkdir("", 0o755)?;
    for rel in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "dev", "sys", "www",
    ] {
        mkdir(rel, 0o755)?;
    }
    mkdir("tmp", 0o1777)?;
    mkdir("root", 0o700)?;

    let target = dir.join("bin/busybox");
    fs::copy(&busybox, &target).map_err(|e| Error::io(&target, e))?;
    fs::set_permissions(&target, Permissions::from_mode(0o755))
        .map_err(|e| Error::io(&target, e))?;
    for applet in applets(&busybox)? {
        // `usr/bin/awk` -> `../../bin/busybox`: relative, so it also works seen from the host.
        let depth = applet.components().count() - 1;
        let link_target = if applet.starts_with("bin") {
            PathBuf::from("busybox")
        } else {
            PathBuf::from("../".repeat(depth)).join("bin/busybox")
        };
        let link = dir.join(&applet);
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&link, e)),
        }
        std::os::unix::fs::symlink(&link_target, &link).map_err(|e| Error::io(&link, e))?;
    }

    for (rel, text, mode) in [
        ("etc/passwd", PASSWD, 0o644),
        ("etc/group", GROUP, 0o644),
        ("www/index.html", INDEX_HTML, 0o644),
        ("etc/hosts", "", 0o644),
        ("etc/resolv.conf", "", 0o644),
    ] {
        let path = dir.join(rel);
        fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        fs::set_permissions(&path, Permissions::from_mode(mode))
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// The applets' paths, e.g. `bin/sh`, `usr/bin/awk` (`busybox --list-full`).
fn applets(busybox: &Path) -> Result<Vec<PathBuf>, Error> {
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::io(busybox, e))?;
    if !output.status.success() {
        return Err(Error::Busybox(format!(
            "{} --list-full: {}",
            busybox.display(),
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .map(PathBuf::from)
        // Top-level entries (`linuxrc`) are boot-time leftovers, not commands.
        .filter(|p| p.components().count() > 1 && p != Path::new("bin/busybox"))
        .filter(|p| crate::archive_path::normalize(p).is_ok_and(|n| n == *p))
        .collect())
}

/// An ELF executable without a program interpreter (PT_INTERP) needs no libc from the image.
fn is_static_elf(binary: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read = |at: usize, len: usize| binary.get(at..at + len);
    let (Some(magic), Some(class)) = (read(0, 4), read(4, 1)) else {
        return false;
    };
    if magic != b"\x7fELF" || class != [2] {
        return false; // only 64-bit little-endian ELF is expected here
    }
    let u16_at = |at| read(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at =
        |at| read(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| {
        read(phoff + i * phentsize, 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().expect("4 bytes")) != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_detection() {
        assert!(!is_static_elf(b"not an elf"));
        assert!(is_static_elf(&fs::read(find().unwrap()).unwrap()));
        assert!(!is_static_elf(&fs::read("/bin/ls").unwrap()));
    }
}
