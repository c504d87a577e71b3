//! A capsule's disk: the bound on what it can write.
//!
//! runsc keeps every write to the root in an overlay whose pages live in a "filestore" file.
//! With `--overlay2=root:dir=<path>` that file is created in `<path>`; the driver makes
//! `<path>` a filesystem of its own, `disk_mb` large: a sparse ext4 image
//! (`sandboxes/<id>/disk.img`, no journal, reserved blocks 0) loop-mounted on
//! `sandboxes/<id>/disk`. When it is full the capsule's writer gets ENOSPC and the capsule
//! lives on (measured); the host's disk holds at most `disk_mb` per capsule, and the capsule's
//! memory is not spent on files. Mounted with `discard`, so space the capsule frees goes back
//! to the host (the image is sparse).
//!
//! The filestore's medium travels with a checkpoint: an image taken with one medium restores
//! only with the same kind (runsc refuses "inconsistent private memory files" otherwise), the
//! directory itself may differ. So the medium is part of what a capsule and a snapshot
//! template record ([`Medium`]); capsules and templates from before disks existed say nothing
//! and are `memory`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::runtime::RuntimeError;

/// Smallest disk a capsule gets (the overlay needs room for its own bookkeeping).
pub const MIN_DISK_MB: u32 = 64;
/// Largest disk a capsule may ask for.
pub const MAX_DISK_MB: u32 = 1024 * 1024;

const MKFS_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a capsule's root overlay keeps its pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Medium {
    /// In the capsule's memory (no disk bound; what every capsule used before disks).
    #[default]
    Memory,
    /// In a file on the capsule's own disk.
    Disk,
}

/// The image and mount point of capsule dir `dir`.
fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("disk.img"), dir.join("disk"))
}

/// The mount point that `--overlay2=root:dir=` names.
pub fn mount_point(dir: &Path) -> PathBuf {
    paths(dir).1
}

/// Whether capsule dir `dir` has a disk (so its overlay medium is [`Medium::Disk`]).
pub fn exists(dir: &Path) -> bool {
    paths(dir).0.exists()
}

/// Makes and mounts the disk of capsule dir `dir` unless it is mounted already (a resume, an
/// adopted capsule). A restore into a fresh disk is fine: the checkpoint holds the data.
pub async fn ensure(dir: &Path, disk_mb: u32) -> Result<(), RuntimeError> {
    let (image, mount) = paths(dir);
    if is_mounted(&mount) {
        return Ok(());
    }
    std::fs::create_dir_all(&mount).map_err(RuntimeError::io("creating the disk mount point"))?;
    let size = u64::from(disk_mb.clamp(MIN_DISK_MB, MAX_DISK_MB)) * 1024 * 1024;
    let fresh = !image.exists();
    if fresh {
        let file = std::fs::File::create(&image).map_err(RuntimeError::io("creating disk.img"))?;
        file.set_len(size)
            .map_err(RuntimeError::io("sizing disk.img"))?;
        run(
            "mkfs.ext4",
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-O", "^has_journal"])
                .args(["-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"])
                .arg(&image),
        )
        .await?;
    }
    run(
        "mount",
        Command::new("mount")
            .args(["-o", "loop,nosuid,nodev,noexec,discard"])
            .arg(&image)
            .arg(&mount),
    )
    .await
}

/// Detaches the disk of capsule dir `dir` (absent is fine); the loop device goes with the
/// last user of the mount.
pub fn release(dir: &Path) {
    let mount = mount_point(dir);
    if is_mounted(&mount) {
        let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Bytes in use on the capsule's disk (what its overlay holds), 0 without one.
pub fn used_bytes(dir: &Path) -> u64 {
    let mount = mount_point(dir);
    if !is_mounted(&mount) {
        return 0;
    }
    match nix::sys::statvfs::statvfs(&mount) {
        Ok(s) => s.blocks().saturating_sub(s.blocks_free()) * s.fragment_size(),
        Err(_) => 0,
    }
}

/// Whether something is mounted on `path` (its device differs from its parent's).
fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(path);
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

async fn run(what: &str, cmd: &mut Command) -> Result<(), RuntimeError> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(MKFS_TIMEOUT, cmd.output())
        .await
        .map_err(|_| RuntimeError::Command {
            op: what.into(),
            reason: format!("timed out after {MKFS_TIMEOUT:?}"),
        })?
        .map_err(RuntimeError::io(format!("running {what}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Command {
            op: what.into(),
            reason: super::runsc::last_lines(&String::from_utf8_lossy(&out.stderr)),
        })
    }
}
