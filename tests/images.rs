//! Images: importing each format built here, safe extraction against
//! malicious archives, interrupted imports, leases, and root filesystem setup
//! in new namespaces (real mounts, as root). Everything lives in a temporary
//! directory per test; no mount under it survives the test.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{bin, busybox_rootfs, example, require_root, BoundedChild, BoundedCommand};
use tar::{EntryType, Header};

fn no_progress(_: images::Progress) {}

/// A temporary directory for one test, and the images directory in it.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let images_dir = tmp.path().join("images");
    (tmp, images_dir)
}

fn import(
    images_dir: &Path,
    name: &str,
    source: &Path,
) -> Result<images::ImageInfo, images::Error> {
    images::import(
        images_dir,
        name,
        source,
        images::Existing::Refuse,
        &no_progress,
    )
}

fn rootfs(images_dir: &Path, name: &str) -> PathBuf {
    images_dir.join(name).join("rootfs")
}

/// Names in `images_dir` other than `.lock` and `.leases`: images and leftovers.
fn entries(images_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(images_dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n != ".lock" && n != ".leases");
    names.sort();
    names
}

// ---- building archives ------------------------------------------------------

const MTIME: u64 = 1_600_000_000;

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_link(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, path: &str, target: &str) {
    let mut h = header(kind, 0o777, 0);
    b.append_link(&mut h, path, target).unwrap();
}

/// An entry written byte for byte: the tar crate refuses to build `..` and absolute names.
fn add_raw(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, name: &str, link: &str, data: &[u8]) {
    let mut h = header(kind, 0o644, data.len() as u64);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname = [0; 100];
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// A PAX extended header applying to the next entry.
fn add_pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (key, value) in records {
        let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    add_raw(b, EntryType::XHeader, "PaxHeader", "", &data);
}

fn tar_bytes(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd(1) is needed for these tests: apt-get install zstd");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.bounded_wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A small root filesystem exercising what an export must keep: modes,
/// set-id bits, ownership, mtimes, xattrs, symlinks, hard links, FIFOs.
fn export_tar() -> Vec<u8> {
    tar_bytes(|b| {
        add_dir(b, "etc");
        let mut h = header(EntryType::Regular, 0o640, 5);
        h.set_uid(1000);
        h.set_gid(1001);
        b.append_data(&mut h, "etc/hostname", &b"box\n\n"[..])
            .unwrap();
        let mut h = header(EntryType::Regular, 0o4755, 2);
        b.append_data(&mut h, "bin/suid", &b"#!"[..]).unwrap();
        add_pax(b, &[("SCHILY.xattr.user.origin", b"test")]);
        add_file(b, "etc/tagged", b"xattr");
        add_link(b, EntryType::Symlink, "bin/sh", "/bin/busybox");
        add_link(b, EntryType::Link, "etc/hostname2", "etc/hostname");
        let mut h = header(EntryType::Fifo, 0o600, 0);
        b.append_data(&mut h, "run/fifo", &[][..]).unwrap();
    })
}

fn check_export(root: &Path) {
    let host = fs::metadata(root.join("etc/hostname")).unwrap();
    assert_eq!(host.mode() & 0o7777, 0o640);
    assert_eq!((host.uid(), host.gid()), (1000, 1001));
    assert_eq!(host.mtime(), MTIME as i64);
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"box\n\n");
    assert_eq!(
        fs::metadata(root.join("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(root.join("etc/hostname2")).unwrap().ino(),
        host.ino()
    );
    assert!(fs::metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        get_xattr(&root.join("etc/tagged"), "user.origin").as_deref(),
        Some(&b"test"[..])
    );
    assert_eq!(
        fs::metadata(root.join("etc")).unwrap().mtime(),
        MTIME as i64
    );
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

// ---- import -----------------------------------------------------------------

#[test]
fn imports_export_tarballs_plain_gzip_and_zstd_by_content() {
    let (tmp, images_dir) = scratch();
    let tar = export_tar();
    // Names that lie about the content: detection goes by magic bytes.
    let sources = [
        ("plain", "a.tar.gz", tar.clone()),
        ("gzip", "b.tar", gzip(&tar)),
        ("zstd", "c.tgz", zstd(&tar)),
    ];
    for (name, file, bytes) in &sources {
        let path = tmp.path().join(file);
        fs::write(&path, bytes).unwrap();
        let info = import(&images_dir, name, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.format, "docker-export");
        check_export(&rootfs(&images_dir, name));
    }
    let listed: Vec<String> = images::list(&images_dir)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, ["gzip", "plain", "zstd"]);
    // The image directory is not reachable by other host users (set-id programs inside).
    assert_eq!(
        fs::metadata(images_dir.join("plain")).unwrap().mode() & 0o777,
        0o700
    );
    let again = import(&images_dir, "plain", &tmp.path().join("a.tar.gz")).unwrap_err();
    assert!(matches!(again, images::Error::Exists { .. }), "{again}");
}

#[test]
fn imports_a_stream_from_a_pipe() {
    let (tmp, images_dir) = scratch();
    let archive = tmp.path().join("export.tar.gz");
    fs::write(&archive, gzip(&export_tar())).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} | {} image import piped /dev/stdin --images-dir {}",
            archive.display(),
            bin("supervisor").display(),
            images_dir.display()
        ))
        .bounded_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_export(&rootfs(&images_dir, "piped"));
}

/// Two layers: the second deletes a file (`.wh.gone`), makes a directory
/// opaque (`.wh..wh..opq`) while adding to it, and adds a file.
fn oci_layout(dir: &Path) {
    let lower = tar_bytes(|b| {
        add_dir(b, "etc");
        add_file(b, "etc/keep", b"keep");
        add_file(b, "etc/gone", b"gone");
        add_dir(b, "opq");
        add_file(b, "opq/old", b"old");
        add_dir(b, "opq/sub");
        add_file(b, "opq/sub/deep", b"deep");
    });
    let upper = gzip(&tar_bytes(|b| {
        add_file(b, "etc/.wh.gone", b"");
        add_dir(b, "opq");
        add_file(b, "opq/new", b"new");
        add_file(b, "opq/.wh..wh..opq", b"");
        add_file(b, "etc/added", b"added");
    }));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let digest = |n: u8| format!("{:064x}", n);
    fs::write(blobs.join(digest(1)), &lower).unwrap();
    fs::write(blobs.join(digest(2)), &upper).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", digest(4)), "size": 2},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", digest(1)), "size": lower.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{}", digest(2)), "size": upper.len()},
        ]
    });
    fs::write(blobs.join(digest(3)), manifest.to_string()).unwrap();
    fs::write(blobs.join(digest(4)), "{}").unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", digest(3)), "size": 1,
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn check_layers(root: &Path) {
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("etc/added")).unwrap(), b"added");
    assert_eq!(fs::read(root.join("opq/new")).unwrap(), b"new");
    for gone in [
        "etc/gone",
        "opq/old",
        "opq/sub",
        "etc/.wh.gone",
        "opq/.wh..wh..opq",
    ] {
        assert!(
            fs::symlink_metadata(root.join(gone)).is_err(),
            "{gone} should not exist"
        );
    }
}

#[test]
fn imports_an_oci_layout_as_directory_tar_and_compressed_tar() {
    let (tmp, images_dir) = scratch();
    let layout = tmp.path().join("layout");
    oci_layout(&layout);
    let tar = tar_bytes(|b| b.append_dir_all(".", &layout).unwrap());
    fs::write(tmp.path().join("layout.tar"), &tar).unwrap();
    fs::write(tmp.path().join("layout.tar.zst"), zstd(&tar)).unwrap();
    for (name, source) in [
        ("dir", layout.clone()),
        ("tar", tmp.path().join("layout.tar")),
        ("zst", tmp.path().join("layout.tar.zst")),
    ] {
        let info = import(&images_dir, name, &source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.format, "oci-layout", "{name}");
        check_layers(&rootfs(&images_dir, name));
    }
    // The spooled copy of the compressed layout is not kept.
    assert!(!images_dir.join("zst/layout.tar").exists());
}

#[test]
fn imports_a_legacy_docker_save_tarball() {
    let (tmp, images_dir) = scratch();
    let (one, two) = (format!("{:064x}", 1), format!("{:064x}", 2));
    let tar = tar_bytes(|b| {
        add_dir(b, &format!("{one}/"));
        let layer = tar_bytes(|l| {
            add_dir(l, "etc");
            add_file(l, "etc/gone", b"gone");
            add_file(l, "etc/keep", b"keep");
        });
        add_file(b, &format!("{one}/layer.tar"), &layer);
        add_dir(b, &format!("{two}/"));
        add_file(
            b,
            &format!("{two}/layer.tar"),
            &tar_bytes(|l| add_file(l, "etc/.wh.gone", b"")),
        );
        let manifest = format!(
            r#"[{{"Config":"c.json","RepoTags":["x:1"],"Layers":["{one}/layer.tar","{two}/layer.tar"]}}]"#
        );
        add_file(b, "manifest.json", manifest.as_bytes());
    });
    let path = tmp.path().join("saved.tar");
    fs::write(&path, tar).unwrap();
    assert_eq!(
        import(&images_dir, "saved", &path).unwrap().format,
        "oci-layout"
    );
    let root = rootfs(&images_dir, "saved");
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"keep");
    assert!(!root.join("etc/gone").exists());
}

#[test]
fn imports_a_plain_directory_as_a_copy() {
    let (tmp, images_dir) = scratch();
    let source = tmp.path().join("src");
    busybox_rootfs(&source);
    fs::hard_link(source.join("etc/passwd"), source.join("etc/passwd.link")).unwrap();
    let info = import(&images_dir, "copy", &source).unwrap();
    assert_eq!(info.format, "directory");
    let copy = rootfs(&images_dir, "copy");
    let diff = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&source)
        .arg(&copy)
        .bounded_output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let (a, b) = (
        fs::metadata(copy.join("etc/passwd")).unwrap(),
        fs::metadata(copy.join("etc/passwd.link")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        fs::metadata(copy.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
}

// ---- safe extraction --------------------------------------------------------

/// Every path under `dir` with its type, size, mode, mtime and link count.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let content = if m.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path, (m.mode(), m.size(), m.mtime(), m.nlink(), content));
        }
    }
    out
}

#[test]
fn malicious_archives_change_nothing_outside_the_image() {
    let (tmp, images_dir) = scratch();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("victim"), "precious").unwrap();
    let before = snapshot(&outside);
    let out = outside
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let abs = outside.to_str().unwrap().to_string();
    // From images/.tmp-NAME-XXX/rootfs, five levels up is the test directory's parent's parent...
    let up = "../../../../../../../../../..";

    // Refused outright: `..` in an entry or a hard link target.
    let refused: [(&str, Vec<u8>); 3] = [
        (
            "dotdot",
            tar_bytes(|b| {
                add_raw(
                    b,
                    EntryType::Regular,
                    &format!("{up}/{out}/pwned"),
                    "",
                    b"x",
                )
            }),
        ),
        (
            "dotdot-dir",
            tar_bytes(|b| {
                add_raw(
                    b,
                    EntryType::Regular,
                    &format!("etc/../../{up}/{out}/victim"),
                    "",
                    b"x",
                )
            }),
        ),
        (
            "hardlink-dotdot",
            tar_bytes(|b| add_raw(b, EntryType::Link, "hl", &format!("{up}/{out}/victim"), b"")),
        ),
    ];
    for (name, bytes) in refused {
        let path = tmp.path().join(format!("{name}.tar"));
        fs::write(&path, bytes).unwrap();
        let err = import(&images_dir, name, &path).unwrap_err().to_string();
        assert!(err.contains("'..'"), "{name}: {err}");
        assert_eq!(entries(&images_dir), Vec::<String>::new(), "{name}");
    }

    // Confined: absolute names, symlinks pointing outside (absolute and
    // relative) then written through, hard links through such symlinks, and
    // device nodes (skipped).
    let confined = tar_bytes(|b| {
        add_raw(b, EntryType::Regular, &format!("{abs}/absolute"), "", b"x");
        add_raw(b, EntryType::Symlink, "abs-link", &abs, b"");
        add_raw(b, EntryType::Regular, "abs-link/through-abs", "", b"x");
        add_raw(
            b,
            EntryType::Regular,
            "abs-link/victim",
            "",
            b"overwritten?",
        );
        add_raw(
            b,
            EntryType::Symlink,
            "rel-link",
            &format!("{up}/{out}"),
            b"",
        );
        add_raw(b, EntryType::Regular, "rel-link/through-rel", "", b"x");
        add_raw(b, EntryType::Directory, "rel-link/dir/newdir", "", b"");
        add_raw(
            b,
            EntryType::Symlink,
            "file-link",
            &format!("{abs}/victim"),
            b"",
        );
        add_raw(b, EntryType::Link, "hard-through-link", "file-link", b"");
        add_raw(
            b,
            EntryType::Regular,
            "file-link",
            "",
            b"replaces the link, not its target",
        );
        add_raw(
            b,
            EntryType::Link,
            "hard-abs",
            &format!("{abs}/victim"),
            b"",
        );
        let mut h = header(EntryType::Char, 0o666, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/evil-null", &[][..]).unwrap();
    });
    let path = tmp.path().join("confined.tar");
    fs::write(&path, confined).unwrap();
    let result = import(&images_dir, "confined", &path);
    // The hard link to an absolute path names a file that, inside the image, exists (it was written there).
    result.unwrap_or_else(|e| panic!("confined: {e}"));
    let root = rootfs(&images_dir, "confined");
    let inside = root.join(&out);
    assert_eq!(fs::read(inside.join("victim")).unwrap(), b"overwritten?");
    for name in ["absolute", "through-abs", "through-rel"] {
        assert!(
            inside.join(name).is_file(),
            "{name} should be inside the image"
        );
    }
    assert!(inside.join("dir/newdir").is_dir());
    assert_eq!(
        fs::read(root.join("file-link")).unwrap(),
        b"replaces the link, not its target"
    );
    assert!(fs::symlink_metadata(root.join("hard-through-link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        fs::symlink_metadata(root.join("dev/evil-null")).is_err(),
        "device nodes are skipped"
    );

    assert_eq!(
        snapshot(&outside),
        before,
        "something outside the image changed"
    );
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
}

// ---- interrupted imports ----------------------------------------------------

#[test]
fn damaged_archives_leave_no_image() {
    let (tmp, images_dir) = scratch();
    let tar = tar_bytes(|b| {
        add_dir(b, "etc");
        add_file(b, "etc/big", &vec![7u8; 100_000]);
        add_file(b, "etc/after", b"after");
    });
    let gz = gzip(&tar);
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated-in-data", tar[..50_000].to_vec()),
        (
            "truncated-at-header",
            tar[..tar.len() - 1024 - 512 - 512].to_vec(),
        ),
        ("truncated-gzip", gz[..gz.len() / 2].to_vec()),
        ("corrupt-gzip", {
            let mut bad = gz.clone();
            let mid = bad.len() / 2;
            bad[mid..mid + 16].fill(0xff);
            bad
        }),
        ("garbage", vec![0x42; 4096]),
    ];
    for (name, bytes) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = import(&images_dir, name, &path).expect_err(name);
        eprintln!("{name}: {err}");
        assert_eq!(
            entries(&images_dir),
            Vec::<String>::new(),
            "{name} left something"
        );
    }
}

#[test]
fn a_killed_import_leaves_no_image_and_its_leftovers_are_removed_later() {
    let (tmp, images_dir) = scratch();
    let fifo = tmp.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut child = Command::new(bin("supervisor"))
        .args(["image", "import", "killed"])
        .arg(&fifo)
        .arg("--images-dir")
        .arg(&images_dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half an archive, then the writer stays open: the import blocks mid-entry.
    let mut writer = open_fifo_writer(&fifo, &mut child);
    let tar = tar_bytes(|b| add_file(b, "big", &vec![1u8; 1 << 20]));
    writer.write_all(&tar[..300_000]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !entries(&images_dir)
        .iter()
        .any(|n| n.starts_with(".tmp-killed-"))
    {
        assert!(Instant::now() < deadline, "the import never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(writer);
    let names = entries(&images_dir);
    assert!(!names.contains(&"killed".to_string()), "{names:?}");
    assert_eq!(names.len(), 1, "{names:?}");

    // The next import removes the leftover.
    let archive = tmp.path().join("ok.tar");
    fs::write(&archive, export_tar()).unwrap();
    import(&images_dir, "next", &archive).unwrap();
    assert_eq!(entries(&images_dir), ["next"]);
}

/// Opens the FIFO for writing once `reader` has opened it; fails (rather
/// than hang) if the reader exits first.
fn open_fifo_writer(fifo: &Path, reader: &mut std::process::Child) -> fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(file) => {
                // Blocking writes from here on.
                nix::fcntl::fcntl(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                )
                .unwrap();
                return file;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => panic!("open {}: {e}", fifo.display()),
        }
        if let Some(status) = reader.try_wait().unwrap() {
            panic!("the import exited before reading: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the import never opened its source"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- leases and the CLI -----------------------------------------------------

fn supervisor(args: &[&str], images_dir: &Path) -> Output {
    Command::new(bin("supervisor"))
        .args(args)
        .arg("--images-dir")
        .arg(images_dir)
        .bounded_output()
        .unwrap()
}

#[test]
fn rm_is_refused_while_a_service_holds_a_lease() {
    let (_tmp, images_dir) = scratch();
    let out = supervisor(&["image", "build-busybox", "demo"], &images_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs_dir = rootfs(&images_dir, "demo");
    assert!(rootfs_dir.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(rootfs_dir.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    let ls = supervisor(&["image", "ls"], &images_dir);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        text.starts_with("NAME") && text.lines().nth(1).unwrap().starts_with("demo "),
        "{text}"
    );

    let lease = images::lease(&images_dir, "demo", "service web (state_dir /x)").unwrap();
    let second = images::lease(&images_dir, "demo", "service db (state_dir /y)").unwrap();
    assert_eq!(lease.rootfs(), rootfs_dir);
    let err = images::remove(&images_dir, "demo").unwrap_err();
    assert!(matches!(err, images::Error::InUse { .. }), "{err}");
    let out = supervisor(&["image", "rm", "demo"], &images_dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "image \"demo\" is in use by service db (state_dir /y), service web (state_dir /x)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("image: image"), "{stderr}");
    assert!(rootfs_dir.join("bin/busybox").is_file());

    drop(second);
    let err = images::remove(&images_dir, "demo").unwrap_err();
    assert_eq!(
        err.to_string(),
        "image \"demo\" is in use by service web (state_dir /x)"
    );
    drop(lease);
    let out = supervisor(&["image", "rm", "demo"], &images_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(entries(&images_dir), Vec::<String>::new());
    let records = fs::read_dir(images_dir.join(".leases")).unwrap().count();
    assert_eq!(records, 0, "lease records left behind");
    assert!(matches!(
        images::lease(&images_dir, "demo", "test"),
        Err(images::Error::NotFound { .. })
    ));
    let out = supervisor(&["image", "rm", "../etc"], &images_dir);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid image name"));
}

#[test]
fn import_force_swaps_an_image_atomically_unless_in_use() {
    let (tmp, images_dir) = scratch();
    let source = |text: &str| {
        let dir = tmp.path().join(format!("src-{text}"));
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::write(dir.join("etc/version"), text).unwrap();
        dir
    };
    let (one, two) = (source("one"), source("two"));
    let import = |dir: &Path, force: bool| {
        let mut args = vec!["image", "import", "app", dir.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        supervisor(&args, &images_dir)
    };
    let version = || fs::read_to_string(rootfs(&images_dir, "app").join("etc/version")).unwrap();
    assert!(import(&one, false).status.success());

    // Without --force an existing image is kept.
    let out = import(&two, false);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(version(), "one");

    // Refused while a service holds a lease, and nothing changes.
    let lease = images::lease(&images_dir, "app", "service app (state_dir /x)").unwrap();
    let out = import(&two, true);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(version(), "one");
    drop(lease);

    // Replaced, and nothing of the old image or the import is left beside it.
    let out = import(&two, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(version(), "two");
    assert_eq!(entries(&images_dir), ["app"]);
}

// ---- setup_rootfs -----------------------------------------------------------

/// Runs `script` with busybox sh inside the root filesystem `spec` describes,
/// set up by the `setup_rootfs` example in new mount and pid namespaces.
fn run_in_rootfs(tmp: &Path, spec: &rootfs::RootfsSpec, script: &str) -> Output {
    let spec_path = tmp.join(format!(
        "spec-{}.json",
        integration_tests::unique_name("rootfs")
    ));
    fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .arg(example("setup_rootfs"))
        .arg(&spec_path)
        .args(["/bin/busybox", "sh", "-c", script])
        .bounded_output()
        .expect("unshare(1) from util-linux is needed");
    assert_no_mounts_under(tmp);
    out
}

fn assert_no_mounts_under(dir: &Path) {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    let left: Vec<&str> = mountinfo.lines().filter(|l| l.contains(dir)).collect();
    assert!(left.is_empty(), "mounts left on the host: {left:#?}");
}

fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn spec(image: &Path, layer: Option<PathBuf>, readonly: bool) -> rootfs::RootfsSpec {
    rootfs::RootfsSpec {
        rootfs: Some(image.to_path_buf()),
        writable_layer: layer,
        readonly,
        state_dir: image.with_file_name("state"),
        mounts: Vec::new(),
        devices: Vec::new(),
        host_devices: false,
        console: false,
        mqueue: false,
    }
}

#[test]
fn rootfs_has_proc_dev_sys_tmp_and_bind_mounts() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    // An image without the usual mountpoints gets them (in its writable layer).
    for dir in ["proc", "dev", "sys", "tmp"] {
        fs::remove_dir(image.join(dir)).unwrap();
    }
    let (rw, ro) = (tmp.path().join("rw"), tmp.path().join("ro"));
    fs::create_dir_all(&rw).unwrap();
    fs::create_dir_all(&ro).unwrap();
    fs::write(ro.join("file"), "read me").unwrap();
    let single = tmp.path().join("single");
    fs::write(&single, "one file").unwrap();
    let mut spec = spec(&image, Some(tmp.path().join("layer")), false);
    spec.mounts = vec![
        rootfs::BindMount {
            source: rw.clone(),
            target: "/data/rw".into(),
            readonly: false,
        },
        rootfs::BindMount {
            source: ro.clone(),
            target: "/data/ro".into(),
            readonly: true,
        },
        rootfs::BindMount {
            source: single,
            target: "/etc/single.conf".into(),
            readonly: true,
        },
    ];
    let script = r#"
        set -e
        test "$$" = 1
        test "$(cat /proc/1/comm)" = busybox
        for d in null zero full random urandom tty; do test -c /dev/$d; done
        echo discard > /dev/null
        test "$(head -c 16 /dev/urandom | wc -c)" = 16
        test -L /dev/ptmx && test -d /dev/pts && test -d /dev/shm
        test "$(readlink /dev/fd)" = /proc/self/fd
        grep -q ' /dev/pts .* devpts ' /proc/self/mountinfo
        grep -q ' /tmp .* tmpfs ' /proc/self/mountinfo
        grep -q ' /sys ro,' /proc/self/mountinfo
        grep -q ' /proc/sys ro,' /proc/self/mountinfo
        if [ -e /proc/sysrq-trigger ]; then grep -q ' /proc/sysrq-trigger ro,' /proc/self/mountinfo; fi
        for f in kcore keys timer_list; do
            if [ -e /proc/$f ]; then test "$(head -c 1 /proc/$f | wc -c)" = 0; fi
        done
        ! touch /sys/kernel/x 2>/dev/null
        echo t > /tmp/t
        echo written > /data/rw/out
        test "$(cat /data/ro/file)" = "read me"
        ! sh -c 'echo x > /data/ro/new' 2>/dev/null
        test "$(cat /etc/single.conf)" = "one file"
        test "$(pwd)" = /
        echo OK
    "#;
    let out = run_in_rootfs(tmp.path(), &spec, script);
    assert!(assert_ok(&out).contains("OK"));
    assert_eq!(fs::read_to_string(rw.join("out")).unwrap(), "written\n");
    assert!(!ro.join("new").exists());
    // The image itself is untouched: new mountpoints went to the writable layer.
    assert!(!image.join("proc").exists() && !image.join("data").exists());
    assert!(tmp.path().join("layer/upper/proc").is_dir());
}

#[test]
fn two_overlays_on_one_image_do_not_see_each_others_writes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    let one = spec(&image, Some(tmp.path().join("one")), false);
    let two = spec(&image, Some(tmp.path().join("two")), false);
    assert_ok(&run_in_rootfs(
        tmp.path(),
        &one,
        "echo one > /etc/mine && rm /etc/group",
    ));
    let out = run_in_rootfs(
        tmp.path(),
        &two,
        "test ! -e /etc/mine && test -e /etc/group && echo two > /etc/mine && echo OK",
    );
    assert!(assert_ok(&out).contains("OK"));
    assert_eq!(
        fs::read_to_string(tmp.path().join("one/upper/etc/mine")).unwrap(),
        "one\n"
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("two/upper/etc/mine")).unwrap(),
        "two\n"
    );
    assert!(!image.join("etc/mine").exists() && image.join("etc/group").exists());
    // A layer kept (persist) is seen again by the next run on it.
    let out = run_in_rootfs(
        tmp.path(),
        &one,
        "cat /etc/mine; test ! -e /etc/group && echo OK",
    );
    assert_eq!(assert_ok(&out), "one\nOK\n");
}

#[test]
fn readonly_rootfs_refuses_writes_but_tmp_works() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    for layer in [None, Some(tmp.path().join("layer"))] {
        let script =
            "set -e; ! touch /etc/x 2>/dev/null; ! mkdir /new 2>/dev/null; echo ok > /tmp/x; \
                      grep -q ' / ro,' /proc/self/mountinfo; echo OK";
        let out = run_in_rootfs(tmp.path(), &spec(&image, layer.clone(), true), script);
        assert!(assert_ok(&out).contains("OK"), "layer {layer:?}");
    }
    assert!(!image.join("etc/x").exists());
}

#[test]
fn a_symlink_in_the_image_cannot_redirect_a_mountpoint_to_the_host() {
    require_root();
    // Not under /tmp: the service's /tmp tmpfs would hide the image's copy of the path.
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    // A hostile image: its /data and /sys point at a host directory (absolute
    // and relative symlinks). Inside the image, that path exists too.
    let same_inside = image.join(outside.strip_prefix("/").unwrap());
    fs::create_dir_all(same_inside.join("sys")).unwrap();
    std::os::unix::fs::symlink(&outside, image.join("data")).unwrap();
    fs::remove_dir(image.join("sys")).unwrap();
    let relative = format!("../../../../../../../..{}/sys", outside.display());
    std::os::unix::fs::symlink(relative, image.join("sys")).unwrap();
    let source = tmp.path().join("source");
    fs::create_dir_all(&source).unwrap();
    let layer = tmp.path().join("layer");
    let with_mount = |layer: Option<PathBuf>| {
        let mut spec = spec(&image, layer, false);
        spec.mounts = vec![rootfs::BindMount {
            source: source.clone(),
            target: "/data/mnt".into(),
            readonly: false,
        }];
        spec
    };
    // With a writable layer the missing mountpoint is created, in the layer; without
    // one it must exist already, in the image.
    let out = run_in_rootfs(
        tmp.path(),
        &with_mount(Some(layer.clone())),
        "set -e; echo x > /data/mnt/f; echo OK",
    );
    assert!(assert_ok(&out).contains("OK"));
    assert!(
        layer
            .join("upper")
            .join(outside.strip_prefix("/").unwrap())
            .join("mnt")
            .is_dir(),
        "the mountpoint was made inside the image's writable layer"
    );
    fs::create_dir(same_inside.join("mnt")).unwrap();
    let out = run_in_rootfs(
        tmp.path(),
        &with_mount(None),
        "set -e; echo y > /data/mnt/g; echo OK",
    );
    assert!(assert_ok(&out).contains("OK"));
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "the host directory was written to"
    );
    assert!(tmp.path().join("source/f").exists() && tmp.path().join("source/g").exists());
}

/// Runs `spec` expecting setup to fail with `message`.
fn assert_setup_fails(tmp: &Path, spec: &rootfs::RootfsSpec, message: &str) {
    let out = run_in_rootfs(tmp, spec, "echo UNEXPECTED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn without_a_writable_layer_missing_mountpoints_are_refused_not_created() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    let source = tmp.path().join("source");
    fs::create_dir_all(&source).unwrap();
    let before = snapshot(&image);

    // A shared image, bound as it is (readonly_rootfs): neither a bind mount's
    // target nor a standard mountpoint is made in it.
    for readonly in [true, false] {
        let mut with_mount = spec(&image, None, readonly);
        with_mount.mounts = vec![rootfs::BindMount {
            source: source.clone(),
            target: "/data/sub".into(),
            readonly: false,
        }];
        assert_setup_fails(
            tmp.path(),
            &with_mount,
            "mount target /data/sub does not exist in the image",
        );
    }
    assert_eq!(snapshot(&image), before, "the image changed");
    fs::remove_dir(image.join("proc")).unwrap();
    let before_without_proc = snapshot(&image);
    assert_setup_fails(
        tmp.path(),
        &spec(&image, None, true),
        "mount target /proc does not exist in the image",
    );
    assert_eq!(snapshot(&image), before_without_proc, "the image changed");

    // The host's / (a service without an image): nothing is made there either.
    let on_host = PathBuf::from("/").join(integration_tests::unique_name("rv-created-by-mount"));
    let mut host = spec(&image, None, false);
    host.rootfs = None;
    host.mounts = vec![rootfs::BindMount {
        source,
        target: on_host.join("sub"),
        readonly: false,
    }];
    assert_setup_fails(
        tmp.path(),
        &host,
        &format!(
            "mount target {}/sub does not exist in the host's /",
            on_host.display()
        ),
    );
    assert!(!on_host.exists(), "{} was created", on_host.display());
}

#[test]
fn setup_errors_name_the_step_and_path() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    busybox_rootfs(&image);
    let mut spec = spec(&image, None, false);
    spec.mounts = vec![rootfs::BindMount {
        source: tmp.path().join("no-such-source"),
        target: "/data".into(),
        readonly: false,
    }];
    let out = run_in_rootfs(tmp.path(), &spec, "true");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bind mount source") && stderr.contains("no-such-source"),
        "{stderr}"
    );
}
