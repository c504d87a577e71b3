//! Users and groups, read straight from `/etc/passwd` and `/etc/group`.
//!
//! envd is a static glibc binary, where NSS (`getpwnam`) cannot load its modules, so the
//! files are parsed here. They are small and read on demand, so edits inside the capsule
//! (e.g. `useradd`) are seen at once.
use std::collections::HashMap;
use std::path::PathBuf;

/// A resolved user, ready to run a process as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: String,
    /// Supplementary groups (including the primary group).
    pub groups: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user `{0}` does not exist")]
    Unknown(String),
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Looks a user up by name or numeric uid. `root` (uid 0) always resolves, even in an image
/// without `/etc/passwd`.
pub fn lookup(spec: &str) -> Result<User, UserError> {
    lookup_in(spec, &read(PASSWD), &read(GROUP))
}

fn lookup_in(spec: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    let wanted_uid: Option<u32> = spec.parse().ok();
    let found = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let uid: u32 = f[2].parse().ok()?;
        let gid: u32 = f[3].parse().ok()?;
        (f[0] == spec || wanted_uid == Some(uid)).then(|| User {
            name: f[0].to_owned(),
            uid,
            gid,
            home: PathBuf::from(if f[5].is_empty() { "/" } else { f[5] }),
            shell: f[6].to_owned(),
            groups: Vec::new(),
        })
    });
    let mut user = match found {
        Some(u) => u,
        None if spec == "root" || wanted_uid == Some(0) => User {
            name: "root".into(),
            uid: 0,
            gid: 0,
            home: "/root".into(),
            shell: "/bin/sh".into(),
            groups: Vec::new(),
        },
        None => return Err(UserError::Unknown(spec.to_owned())),
    };
    user.groups.push(user.gid);
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        if f[3].split(',').any(|m| m == user.name) && !user.groups.contains(&gid) {
            user.groups.push(gid);
        }
    }
    Ok(user)
}

/// uid → user name and gid → group name, loaded once per request that lists many files.
#[derive(Debug, Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn load() -> Self {
        Self::parse(&read(PASSWD), &read(GROUP))
    }

    fn parse(passwd: &str, group: &str) -> Self {
        fn ids(text: &str) -> HashMap<u32, String> {
            let mut map = HashMap::new();
            for line in text.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(Ok(id))) = (f.first(), f.get(2).map(|s| s.parse())) {
                    map.entry(id).or_insert_with(|| (*name).to_owned());
                }
            }
            map
        }
        Self {
            users: ids(passwd),
            groups: ids(group),
        }
    }

    /// The user's name, or the number when it has none.
    pub fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// The group's name, or the number when it has none.
    pub fn group(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        wrenn-user:x:1000:1000::/home/wrenn-user:/bin/bash\nbroken-line\n";
    const GROUP: &str = "root:x:0:\nwrenn-user:x:1000:\nsudo:x:27:wrenn-user,other\n";

    #[test]
    fn resolves_by_name_and_uid_with_groups() {
        let u = lookup_in("wrenn-user", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.home, PathBuf::from("/home/wrenn-user"));
        assert_eq!(u.groups, vec![1000, 27]);
        assert_eq!(lookup_in("1000", PASSWD, GROUP).unwrap().name, "wrenn-user");
        assert!(matches!(
            lookup_in("nobody", PASSWD, GROUP),
            Err(UserError::Unknown(_))
        ));
        assert_eq!(lookup_in("root", "", "").unwrap().uid, 0);
    }

    #[test]
    fn names_fall_back_to_numbers() {
        let n = Names::parse(PASSWD, GROUP);
        assert_eq!(n.user(1000), "wrenn-user");
        assert_eq!(n.group(27), "sudo");
        assert_eq!(n.user(4242), "4242");
    }
}
