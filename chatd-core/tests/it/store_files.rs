//! Files at rest: the SQLite database the store creates, and the `-wal` and `-shm` files
//! SQLite makes beside it, are readable and writable by their owner only
//! (`PRIVATE_FILE_MODE`). The binary's test (`server-example/tests/cli.rs`) checks the same
//! under a umask of 000, with the key file.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt;

use chatd_core::store::{NewUser, Store};
use chatd_core::{Role, PRIVATE_FILE_MODE};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_its_wal_and_shm_files_are_owner_only() {
    let dir = std::env::temp_dir().join(format!("chatd-files-{}", codersdk::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("chatd.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    // A write, so the WAL and the shared-memory index exist.
    store
        .create_user(NewUser {
            username: "alice".into(),
            name: "Alice".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.join(format!("chatd.db{suffix}"));
        assert!(
            path.exists(),
            "{} exists while the store is open",
            path.display()
        );
        assert_eq!(mode(&path), PRIVATE_FILE_MODE, "{}", path.display());
    }
    store.close().await;
    // An existing file keeps the mode its operator chose.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert_eq!(mode(&db), 0o640);
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
