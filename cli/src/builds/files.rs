//! The files sent with a build: what `--file` names, keyed by the path relative to the
//! recipe's directory.

use crate::error::{fail, Result};
use std::path::{Component, Path, PathBuf};

/// The files to send: each `--file` (a directory: every file under it) keyed by its path
/// relative to the recipe's directory, with `/` separators. A path that does not exist as
/// given is also looked up in the recipe's directory.
pub fn collect_files(recipe: &Path, files: &[PathBuf]) -> Result<Vec<(String, PathBuf)>> {
    let cwd = std::env::current_dir().map_err(|e| fail(format!("current directory: {e}")))?;
    let recipe_dir = normalise(&cwd.join(recipe))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut out = Vec::new();
    for given in files {
        let candidates = [cwd.join(given), recipe_dir.join(given)];
        let Some(path) = candidates.iter().map(|p| normalise(p)).find(|p| p.exists()) else {
            return Err(fail(format!("{}: no such file", given.display())));
        };
        let Ok(relative) = path.strip_prefix(&recipe_dir) else {
            return Err(fail(format!(
                "{} is outside the recipe's directory {}; COPY can only name files under it",
                given.display(),
                recipe_dir.display()
            )));
        };
        if path.is_dir() {
            walk(&path, relative, &mut out)?;
        } else {
            out.push((key(relative), path.clone()));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

fn walk(dir: &Path, relative: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let path = entry.path();
        let rel = relative.join(entry.file_name());
        if path.is_dir() {
            walk(&path, &rel, out)?;
        } else if path.is_file() {
            out.push((key(&rel), path));
        }
    }
    Ok(())
}

fn key(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// `a/./b/../c` → `a/c`, without touching the file system (symbolic links stay as given).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_keyed_relative_to_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tpl/app/sub")).unwrap();
        std::fs::write(root.join("tpl/Recipe"), "FROM x\n").unwrap();
        std::fs::write(root.join("tpl/app.py"), "print(1)\n").unwrap();
        std::fs::write(root.join("tpl/app/sub/a.txt"), "a").unwrap();
        std::fs::write(root.join("outside.txt"), "o").unwrap();
        let recipe = root.join("tpl/Recipe");
        let files =
            collect_files(&recipe, &[root.join("tpl/app.py"), root.join("tpl/./app")]).unwrap();
        let keys: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["app.py", "app/sub/a.txt"]);
        // A bare name is found next to the recipe.
        let files = collect_files(&recipe, &[PathBuf::from("app.py")]).unwrap();
        assert_eq!(files[0].0, "app.py");
        let err = collect_files(&recipe, &[root.join("outside.txt")]).unwrap_err();
        assert!(
            err.to_string().contains("outside the recipe's directory"),
            "{err}"
        );
    }
}
