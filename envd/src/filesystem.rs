//! The capsule's filesystem: entry descriptions, path resolution and the operations shared
//! by the gRPC FilesystemService and the HTTP file transfer.
pub mod service;
pub mod watch;

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use wrenn_proto::envd::v1::{EntryInfo, FileType};

use crate::users::{Names, User};

/// Resolves `path` for `user`: relative paths are taken from the user's home directory, and
/// `.`/`..` are folded lexically.
pub fn resolve(path: &str, user: &User) -> io::Result<PathBuf> {
    if path.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path is required",
        ));
    }
    let joined = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        user.home.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// `ls -l` style permissions for a `st_mode`.
pub fn permissions_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => special_char,
            (false, true) => special_char.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Describes `path` without following a final symlink.
pub fn entry(path: &Path, names: &Names) -> io::Result<EntryInfo> {
    let meta = std::fs::symlink_metadata(path)?;
    let file_type = meta.file_type();
    let (kind, target) = if file_type.is_symlink() {
        (
            FileType::Symlink,
            std::fs::read_link(path)
                .ok()
                .map(|t| t.display().to_string()),
        )
    } else if file_type.is_dir() {
        (FileType::Directory, None)
    } else {
        (FileType::File, None)
    };
    Ok(EntryInfo {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        path: path.display().to_string(),
        r#type: kind as i32,
        size: meta.len(),
        mode: meta.permissions().mode() & 0o7777,
        permissions: permissions_string(meta.mode()),
        owner: names.user(meta.uid()),
        group: names.group(meta.gid()),
        modified_at: meta.mtime(),
        symlink_target: target,
    })
}

/// Lists `dir` down to `depth` levels (0 and 1: direct children), sorted by path. Symlinked
/// directories are listed but not descended into.
pub fn list(dir: &Path, depth: u32, names: &Names) -> io::Result<Vec<EntryInfo>> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 1u32)];
    while let Some((current, level)) = pending.pop() {
        let read = match std::fs::read_dir(&current) {
            Ok(r) => r,
            // The root must be readable; deeper unreadable directories are listed, not entered.
            Err(e) if current == dir => return Err(e),
            Err(_) => continue,
        };
        for item in read.flatten() {
            let path = item.path();
            let Ok(info) = entry(&path, names) else {
                continue;
            };
            if info.r#type == FileType::Directory as i32 && level < depth.max(1) {
                pending.push((path, level + 1));
            }
            out.push(info);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Creates `dir` and any missing parents; the directories created are owned by `user`.
/// Fails with `AlreadyExists` when `dir` exists.
pub fn make_dir(dir: &Path, user: &User) -> io::Result<()> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", dir.display()),
        ));
    }
    create_parents(dir, user)
}

/// Creates `dir` with its missing ancestors (no error if it exists), owning new ones to `user`.
pub fn create_parents(dir: &Path, user: &User) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => chown(p, user)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn chown(path: &Path, user: &User) -> io::Result<()> {
    // Files envd creates are already its own; only a different owner needs CAP_CHOWN.
    let (euid, egid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if (user.uid, user.gid) == (euid, egid) || euid != 0 {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
}

/// Removes a file, symlink or directory tree.
pub fn remove(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings_match_ls() {
        assert_eq!(permissions_string(libc::S_IFREG | 0o755), "-rwxr-xr-x");
        assert_eq!(permissions_string(libc::S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(permissions_string(libc::S_IFREG | 0o4644), "-rwSr--r--");
        assert_eq!(permissions_string(libc::S_IFLNK | 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn relative_paths_start_at_home_and_cannot_climb_out_of_root() {
        let user = crate::users::lookup("root").unwrap();
        assert_eq!(resolve("a/../b", &user).unwrap(), user.home.join("b"));
        assert_eq!(
            resolve("/../../etc/./passwd", &user).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        assert!(resolve("", &user).is_err());
    }
}
