//! Directory watches on inotify.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use wrenn_proto::envd::v1::{EventType, FilesystemEvent};

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A watch on one directory, optionally with all its subdirectories.
pub struct Watch {
    inotify: AsyncFd<InotifyFd>,
    root: PathBuf,
    recursive: bool,
    /// Watch descriptor → directory, relative to `root`.
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_DONT_FOLLOW
}

impl Watch {
    pub fn new(root: &Path, recursive: bool) -> io::Result<Self> {
        if !std::fs::metadata(root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let mut watch = Self {
            inotify: crate::fd_stream::register(InotifyFd(inotify))?,
            root: root.to_path_buf(),
            recursive,
            dirs: HashMap::new(),
        };
        watch.add(PathBuf::new())?;
        Ok(watch)
    }

    /// Watches `relative` (and, when recursive, every directory below it).
    fn add(&mut self, relative: PathBuf) -> io::Result<()> {
        let absolute = self.root.join(&relative);
        let wd = self.inotify.get_ref().0.add_watch(&absolute, mask())?;
        self.dirs.insert(wd, relative.clone());
        if self.recursive {
            if let Ok(read) = std::fs::read_dir(&absolute) {
                for item in read.flatten() {
                    if item.file_type().is_ok_and(|t| t.is_dir()) {
                        // A directory that vanished meanwhile is simply not watched.
                        let _ = self.add(relative.join(item.file_name()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The next batch of events; `None` once the watched directory itself is gone.
    pub async fn next(&mut self) -> io::Result<Option<Vec<FilesystemEvent>>> {
        loop {
            let mut guard = self.inotify.readable().await?;
            let read = guard.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from));
            let raw = match read {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            };
            let mut out = Vec::new();
            for ev in raw {
                let Some(dir) = self.dirs.get(&ev.wd).cloned() else {
                    continue;
                };
                if ev.mask.contains(AddWatchFlags::IN_DELETE_SELF) && dir.as_os_str().is_empty() {
                    return Ok(None);
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.dirs.remove(&ev.wd);
                    continue;
                }
                let Some(name) = ev.name else { continue };
                let relative = dir.join(&name);
                let kind = if ev
                    .mask
                    .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                {
                    if self.recursive && ev.mask.contains(AddWatchFlags::IN_ISDIR) {
                        let _ = self.add(relative.clone());
                    }
                    EventType::Create
                } else if ev.mask.contains(AddWatchFlags::IN_MODIFY) {
                    EventType::Write
                } else if ev.mask.contains(AddWatchFlags::IN_DELETE) {
                    EventType::Remove
                } else if ev.mask.contains(AddWatchFlags::IN_MOVED_FROM) {
                    EventType::Rename
                } else if ev.mask.contains(AddWatchFlags::IN_ATTRIB) {
                    EventType::Chmod
                } else {
                    continue;
                };
                out.push(FilesystemEvent {
                    name: relative.display().to_string(),
                    path: self.root.join(&relative).display().to_string(),
                    r#type: kind as i32,
                });
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}
