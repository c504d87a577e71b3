//! FilesystemService against the real envd binary.
mod support;

use std::time::Duration;

use support::*;
use tonic::Code;
use wrenn_proto::envd::v1::{
    watch_dir_response, EventType, FileType, ListDirRequest, MakeDirRequest, MoveRequest,
    RemoveRequest, StatRequest, WatchDirRequest,
};

#[tokio::test]
async fn stat_list_mkdir_move_remove() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let mut fs = envd.fs().await;
        let root = envd.dir.path().join("tree");
        let root_s = root.display().to_string();

        let made = fs
            .make_dir(MakeDirRequest {
                path: format!("{root_s}/a/b"),
                user: None,
            })
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        assert_eq!(
            (made.name.as_str(), made.r#type),
            ("b", FileType::Directory as i32)
        );
        assert!(made.permissions.starts_with('d'));
        let again = fs
            .make_dir(MakeDirRequest {
                path: format!("{root_s}/a/b"),
                user: None,
            })
            .await;
        assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);

        std::fs::write(root.join("a/file.txt"), b"12345").unwrap();
        std::os::unix::fs::symlink("file.txt", root.join("a/link")).unwrap();
        let file = fs
            .stat(StatRequest {
                path: format!("{root_s}/a/file.txt"),
                user: None,
            })
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        assert_eq!(
            (file.size, file.r#type, file.owner.as_str()),
            (5, FileType::File as i32, "root")
        );
        assert_eq!(file.permissions, "-rw-r--r--");
        assert!(file.modified_at > 1_600_000_000);
        let link = fs
            .stat(StatRequest {
                path: format!("{root_s}/a/link"),
                user: None,
            })
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        assert_eq!(
            (link.r#type, link.symlink_target.as_deref()),
            (FileType::Symlink as i32, Some("file.txt"))
        );

        let shallow = fs
            .list_dir(ListDirRequest {
                path: root_s.clone(),
                depth: 1,
                user: None,
            })
            .await
            .unwrap();
        let names: Vec<_> = shallow
            .into_inner()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["a"]);
        let deep = fs
            .list_dir(ListDirRequest {
                path: root_s.clone(),
                depth: 3,
                user: None,
            })
            .await
            .unwrap();
        let paths: Vec<_> = deep
            .into_inner()
            .entries
            .into_iter()
            .map(|e| e.path.replace(&root_s, ""))
            .collect();
        assert_eq!(paths, vec!["/a", "/a/b", "/a/file.txt", "/a/link"]);

        let moved = fs
            .r#move(MoveRequest {
                source: format!("{root_s}/a/file.txt"),
                destination: format!("{root_s}/moved.txt"),
                user: None,
            })
            .await
            .unwrap()
            .into_inner()
            .entry
            .unwrap();
        assert_eq!((moved.name.as_str(), moved.size), ("moved.txt", 5));

        fs.remove(RemoveRequest {
            path: format!("{root_s}/a"),
            user: None,
        })
        .await
        .unwrap();
        assert!(!root.join("a").exists());

        for missing in [
            fs.stat(StatRequest {
                path: format!("{root_s}/nope"),
                user: None,
            })
            .await
            .map(|_| ()),
            fs.list_dir(ListDirRequest {
                path: format!("{root_s}/nope"),
                depth: 1,
                user: None,
            })
            .await
            .map(|_| ()),
            fs.remove(RemoveRequest {
                path: format!("{root_s}/nope"),
                user: None,
            })
            .await
            .map(|_| ()),
            fs.r#move(MoveRequest {
                source: format!("{root_s}/nope"),
                destination: format!("{root_s}/x"),
                user: None,
            })
            .await
            .map(|_| ()),
        ] {
            assert_eq!(missing.unwrap_err().code(), Code::NotFound, "{transport:?}");
        }
        let bad_user = fs
            .stat(StatRequest {
                path: root_s.clone(),
                user: Some("no-such-user-here".into()),
            })
            .await;
        assert_eq!(bad_user.unwrap_err().code(), Code::InvalidArgument);
    }
}

#[tokio::test]
async fn watch_reports_create_write_chmod_rename_remove_recursively() {
    let envd = Envd::start(Transport::Unix).await;
    let mut fs = envd.fs().await;
    let root = envd.dir.path().join("watched");
    std::fs::create_dir_all(root.join("existing")).unwrap();
    let mut stream = fs
        .watch_dir(WatchDirRequest {
            path: root.display().to_string(),
            recursive: true,
            user: None,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap().event.unwrap();
    assert!(matches!(first, watch_dir_response::Event::Start(_)));

    use std::os::unix::fs::PermissionsExt;
    std::fs::write(root.join("f.txt"), b"x").unwrap();
    std::fs::set_permissions(root.join("f.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(root.join("f.txt"), root.join("g.txt")).unwrap();
    std::fs::remove_file(root.join("g.txt")).unwrap();
    std::fs::write(root.join("existing/deep.txt"), b"y").unwrap();
    std::fs::create_dir(root.join("new")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(root.join("new/inner.txt"), b"z").unwrap();

    let expected = [
        ("f.txt", EventType::Create),
        ("f.txt", EventType::Write),
        ("f.txt", EventType::Chmod),
        ("f.txt", EventType::Rename),
        ("g.txt", EventType::Create),
        ("g.txt", EventType::Remove),
        ("existing/deep.txt", EventType::Create),
        ("new", EventType::Create),
        ("new/inner.txt", EventType::Create),
    ];
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !expected
        .iter()
        .all(|(n, t)| seen.contains(&(n.to_string(), *t as i32)))
    {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("missing events; saw {seen:?}"))
            .unwrap()
            .unwrap();
        if let Some(watch_dir_response::Event::Filesystem(e)) = msg.event {
            assert!(e.path.ends_with(&e.name));
            seen.push((e.name, e.r#type));
        }
    }

    let missing = fs
        .watch_dir(WatchDirRequest {
            path: root.join("nope").display().to_string(),
            recursive: false,
            user: None,
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
}
