//! `devices:` entries, `HOST[:CONTAINER[:PERMS]]` as Docker and Compose write them.

use std::path::{Component, Path, PathBuf};

use crate::diagnostic::Report;
use crate::read::{items, scalar_text};
use crate::tree::Node;
use crate::types::{Device, DeviceAccess};

/// What every service's /dev already has (or mounts): a device entry may not
/// replace it or go inside it.
const RESERVED: &[&str] = &[
    "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts", "shm", "mqueue",
    "fd", "stdin", "stdout", "stderr", "init",
];

pub fn devices(report: &mut Report, node: &Node) -> Vec<Device> {
    let mut devices: Vec<Device> = Vec::new();
    let list = items(node).map_err(|why| report.error(node.mark, format!("devices: {why}")));
    for item in list.unwrap_or_default() {
        let parsed = scalar_text(item, "HOST[:CONTAINER[:PERMS]]").and_then(device);
        match parsed {
            Ok(device) if devices.iter().any(|d| d.container == device.container) => {
                let message = format!(
                    "devices: `{}` is listed twice inside the service",
                    device.container.display()
                );
                report.error(item.mark, message);
            }
            Ok(device) => devices.push(device),
            Err(why) => report.error(item.mark, format!("devices: {why}")),
        }
    }
    devices
}

/// `HOST`, `HOST:CONTAINER`, `HOST:PERMS` or `HOST:CONTAINER:PERMS`.
fn device(text: &str) -> Result<Device, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, perms) = match parts[..] {
        [host] => (host, host, None),
        // A second part that is not a path is the permissions, as Docker reads it.
        [host, perms] if !perms.starts_with('/') => (host, host, Some(perms)),
        [host, container] => (host, container, None),
        [host, container, perms] => (host, container, Some(perms)),
        _ => return Err(format!("`{text}`: expected HOST[:CONTAINER[:PERMS]]")),
    };
    let host = absolute(host, "host device")?;
    let container = absolute(container, "device inside the service")?;
    let name = container
        .strip_prefix("/dev")
        .ok()
        .filter(|n| !n.as_os_str().is_empty());
    let Some(name) = name else {
        return Err(format!(
            "`{}`: the device inside the service must be under /dev",
            container.display()
        ));
    };
    if let Some(Component::Normal(first)) = name.components().next() {
        if RESERVED.iter().any(|r| first == *r) {
            return Err(format!(
                "`{}`: /dev/{} is the service's own",
                container.display(),
                first.to_string_lossy()
            ));
        }
    }
    let access = match perms {
        None => DeviceAccess::ALL,
        Some(perms) => access(perms)?,
    };
    Ok(Device {
        host,
        container,
        access,
    })
}

fn absolute(text: &str, what: &str) -> Result<PathBuf, String> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(format!("{what} `{text}` must be an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{what} `{text}` must not contain `..`"));
    }
    Ok(path.components().collect())
}

/// A subset of `rwm`, each letter once.
fn access(text: &str) -> Result<DeviceAccess, String> {
    let bad = || format!("permissions `{text}`: use some of r, w, m, each at most once");
    let mut access = DeviceAccess {
        read: false,
        write: false,
        mknod: false,
    };
    for letter in text.chars() {
        let flag = match letter {
            'r' => &mut access.read,
            'w' => &mut access.write,
            'm' => &mut access.mknod,
            _ => return Err(bad()),
        };
        if *flag {
            return Err(bad());
        }
        *flag = true;
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok(access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms() {
        let d = device("/dev/ttyUSB0").unwrap();
        assert_eq!(d.host, Path::new("/dev/ttyUSB0"));
        assert_eq!(d.container, Path::new("/dev/ttyUSB0"));
        assert_eq!(d.access, DeviceAccess::ALL);
        let d = device("/dev/i2c-1:/dev/i2c-1:rw").unwrap();
        assert_eq!(d.access.to_string(), "rw");
        let d = device("/dev/kmsg:r").unwrap();
        assert_eq!(d.container, Path::new("/dev/kmsg"));
        assert_eq!(d.access.to_string(), "r");
        let d = device("/dev/full:/dev/extra").unwrap();
        assert_eq!(d.container, Path::new("/dev/extra"));
    }

    #[test]
    fn bad_entries() {
        assert!(device("dev/ttyUSB0").unwrap_err().contains("absolute"));
        assert!(device("/dev/a:/dev/b:rx")
            .unwrap_err()
            .contains("permissions"));
        assert!(device("/dev/a:/dev/b:rr")
            .unwrap_err()
            .contains("permissions"));
        assert!(device("/dev/a:/dev/b:")
            .unwrap_err()
            .contains("permissions"));
        assert!(device("/dev/a:/tmp/b").unwrap_err().contains("under /dev"));
        assert!(device("/dev/a:/dev").unwrap_err().contains("under /dev"));
        assert!(device("/dev/a:/dev/../etc").unwrap_err().contains(".."));
        assert!(device("/dev/full:/dev/null").unwrap_err().contains("own"));
        assert!(device("/dev/full:/dev/pts/0").unwrap_err().contains("own"));
        assert!(device("/a:/dev/b:r:w").unwrap_err().contains("expected"));
    }
}
