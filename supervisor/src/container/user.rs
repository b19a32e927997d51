//! Who a service runs as: the `user:` of the config looked up in the root
//! filesystem's own /etc/passwd and /etc/group (never the host's NSS).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use config::User;
use nix::fcntl::OFlag;

use super::spec::Credentials;

/// A resolved user: credentials, and the home directory for `HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub credentials: Credentials,
    pub home: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {user}: not found in {file}")]
    NotFound { user: String, file: PathBuf },
    #[error("user {user}: reading {file}: {source}")]
    Read {
        user: String,
        file: PathBuf,
        source: std::io::Error,
    },
}

/// One line of /etc/passwd.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Resolves `user` (None: root) in the root filesystem at `root`. A name must
/// be in its /etc/passwd; a numeric uid need not be (gid then defaults to the
/// passwd entry's, else 0, as Docker does). Supplementary groups are the
/// primary gid plus every group of /etc/group that lists the user's name.
pub fn resolve(root: &Path, user: Option<&User>) -> Result<ResolvedUser, UserError> {
    let passwd_file = RootFile::new(root, "etc/passwd");
    let group_file = RootFile::new(root, "etc/group");
    let (uid, gid, entry) = match user {
        None => (0, None, find_passwd(&passwd_file, "root", |e| e.uid == 0)?),
        Some(User::Id { uid, gid }) => (
            *uid,
            *gid,
            find_passwd(&passwd_file, &uid.to_string(), |e| e.uid == *uid)?,
        ),
        Some(User::Name(name)) => {
            let entry = find_passwd(&passwd_file, name, |e| &e.name == name)?.ok_or_else(|| {
                UserError::NotFound {
                    user: name.clone(),
                    file: passwd_file.path(),
                }
            })?;
            (entry.uid, None, Some(entry))
        }
    };
    let gid = gid.or(entry.as_ref().map(|e| e.gid)).unwrap_or(0);
    let mut groups = vec![gid];
    if let Some(entry) = &entry {
        for extra in member_groups(&group_file, &entry.name)? {
            if !groups.contains(&extra) {
                groups.push(extra);
            }
        }
    }
    Ok(ResolvedUser {
        credentials: Credentials { uid, gid, groups },
        home: entry.map(|e| e.home),
    })
}

/// The first passwd entry matching `wanted`; a missing file matches nothing.
fn find_passwd(
    file: &RootFile,
    user: &str,
    wanted: impl Fn(&PasswdEntry) -> bool,
) -> Result<Option<PasswdEntry>, UserError> {
    let Some(text) = read_optional(file, user)? else {
        return Ok(None);
    };
    Ok(text
        .lines()
        .filter_map(parse_passwd_line)
        .find(|entry| wanted(entry)))
}

fn parse_passwd_line(line: &str) -> Option<PasswdEntry> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 7 || fields[0].is_empty() {
        return None;
    }
    Some(PasswdEntry {
        name: fields[0].to_string(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: PathBuf::from(fields[5]),
    })
}

/// gids of the groups in `file` whose member list names `user`.
fn member_groups(file: &RootFile, user: &str) -> Result<Vec<u32>, UserError> {
    let Some(text) = read_optional(file, user)? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || !fields[3].split(',').any(|member| member.trim() == user) {
                return None;
            }
            fields[2].parse().ok()
        })
        .collect())
}

/// A file of the root filesystem, read inside it: a symlink cannot lead to
/// the host's files, and anything but a small regular file (a FIFO, a device)
/// is refused rather than read.
struct RootFile<'a> {
    root: &'a Path,
    rel: &'static str,
}

impl RootFile<'_> {
    fn new<'a>(root: &'a Path, rel: &'static str) -> RootFile<'a> {
        RootFile { root, rel }
    }

    /// Where the file is on the host, for messages.
    fn path(&self) -> PathBuf {
        self.root.join(self.rel)
    }

    fn read(&self) -> std::io::Result<String> {
        use std::io::Read;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(self.root)?;
        // O_PATH: opening is all, a FIFO cannot block and a device sees no open.
        let handle = File::from(rootfs::openat_in_root(
            dir.as_fd(),
            Path::new(self.rel),
            OFlag::O_PATH,
        )?);
        let meta = handle.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        let too_large = || std::io::Error::other(format!("larger than {MAX_FILE_SIZE} bytes"));
        if meta.len() > MAX_FILE_SIZE {
            return Err(too_large());
        }
        // Reopening the handle reads the very file that was checked.
        let file = File::open(format!("/proc/self/fd/{}", handle.as_raw_fd()))?;
        let mut text = String::new();
        file.take(MAX_FILE_SIZE + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FILE_SIZE {
            return Err(too_large());
        }
        Ok(text)
    }
}

/// Larger /etc/passwd or /etc/group files are refused.
const MAX_FILE_SIZE: u64 = 1 << 20;

fn read_optional(file: &RootFile, user: &str) -> Result<Option<String>, UserError> {
    match file.read() {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(UserError::Read {
            user: user.to_string(),
            file: file.path(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(dir.path().join("etc/group"), group).unwrap();
        dir
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:Web:/home/web:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nweb:x:1001:\nwheel:x:10:root,web\naudio:x:29:web\n";

    #[test]
    fn name_gets_uid_gid_home_and_member_groups() {
        let root = root_with(PASSWD, GROUP);
        let user = resolve(root.path(), Some(&User::Name("web".into()))).unwrap();
        assert_eq!(
            user.credentials,
            Credentials {
                uid: 1000,
                gid: 1001,
                groups: vec![1001, 10, 29]
            }
        );
        assert_eq!(user.home, Some(PathBuf::from("/home/web")));
    }

    #[test]
    fn no_user_is_root_with_its_groups() {
        let root = root_with(PASSWD, GROUP);
        let user = resolve(root.path(), None).unwrap();
        assert_eq!(
            user.credentials,
            Credentials {
                uid: 0,
                gid: 0,
                groups: vec![0, 10]
            }
        );
        assert_eq!(user.home, Some(PathBuf::from("/root")));
    }

    #[test]
    fn numeric_uid_need_not_exist() {
        let root = root_with(PASSWD, GROUP);
        let unknown = resolve(
            root.path(),
            Some(&User::Id {
                uid: 4242,
                gid: None,
            }),
        )
        .unwrap();
        assert_eq!(
            unknown.credentials,
            Credentials {
                uid: 4242,
                gid: 0,
                groups: vec![0]
            }
        );
        assert_eq!(unknown.home, None);
        let known = resolve(
            root.path(),
            Some(&User::Id {
                uid: 1000,
                gid: Some(7),
            }),
        )
        .unwrap();
        assert_eq!(known.credentials.gid, 7);
    }

    #[test]
    fn a_symlink_cannot_lead_out_of_the_root() {
        let host = root_with(PASSWD, GROUP);
        let root = root_with("", "");
        for file in ["etc/passwd", "etc/group"] {
            std::fs::remove_file(root.path().join(file)).unwrap();
            std::os::unix::fs::symlink(host.path().join(file), root.path().join(file)).unwrap();
        }
        let err = resolve(root.path(), Some(&User::Name("web".into()))).unwrap_err();
        assert!(matches!(err, UserError::NotFound { .. }), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_not_read() {
        let root = root_with(PASSWD, GROUP);
        let passwd = root.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = resolve(root.path(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "user root: reading {}: not a regular file",
                passwd.display()
            )
        );
    }

    #[test]
    fn unknown_name_names_the_file() {
        let root = root_with(PASSWD, GROUP);
        let err = resolve(root.path(), Some(&User::Name("nobody".into()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "user nobody: not found in {}/etc/passwd",
                root.path().display()
            )
        );
    }
}
