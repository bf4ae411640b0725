//! Shared test harness: throwaway database servers and local stand-ins for the engine's ports.
//!
//! Include it from a test binary with `#[path = "../support/mod.rs"] mod support;`. Not every binary uses every
//! helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod binaries;
pub mod local_exec;
pub mod mariadb;
pub mod postgres;
pub mod pushgateway;

/// A free TCP port on 127.0.0.1 (the OS picks it; a server that loses the race retries with another).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// A random password of letters and digits.
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The uid and gid of an OS user, via `id`.
pub fn os_user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .expect("running `id` (apt-get install coreutils)");
        assert!(
            out.status.success(),
            "OS user `{user}` does not exist; it comes with the server package (see the apt-get hint)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// Recursively hands `path` to `uid:gid`.
pub fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown test dir");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read test dir").flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

/// Lets every user traverse `path`'s parents (temp dirs are 0700), so a database's OS user reaches a data
/// directory placed under them.
pub fn open_parents(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for parent in path.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(parent) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                let _ =
                    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o011));
            }
        }
    }
}

/// The data directory a test server uses: `given` (created, handed to `uid:gid`, its parents made traversable),
/// or `default` inside the server's own temp dir.
pub fn data_dir(
    given: Option<&std::path::Path>,
    default: std::path::PathBuf,
    uid: u32,
    gid: u32,
) -> std::path::PathBuf {
    match given {
        Some(data) => {
            std::fs::create_dir_all(data).expect("data dir");
            chown_tree(data, uid, gid);
            open_parents(data);
            data.to_path_buf()
        }
        None => default,
    }
}
