//! A throwaway PostgreSQL cluster for a test: `initdb` in a temporary
//! directory, `pg_ctl start` on a free loopback port (TCP on 127.0.0.1
//! only, its Unix socket in that directory), stopped and deleted on drop.
//! PostgreSQL refuses to run as root: as root the cluster runs as the
//! `postgres` user (Debian's package creates it) or else `nobody`.
//! Missing binaries skip the test, or fail it under `CI=true`.

use super::tools::{find, under_ci};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    pub port: u16,
}

/// The directory holding `initdb` and `pg_ctl`: `PATH`, else Debian's
/// versioned directory (the `postgresql` package does not put them on
/// `PATH`).
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(p) = find("initdb") {
        return p.parent().map(Path::to_path_buf);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Postgres {
    /// Starts a cluster, or `None` (after saying why) when PostgreSQL is
    /// not installed and `CI` is not `true`.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir().filter(|_| find("psql").is_some()) else {
            let msg = "PostgreSQL is not installed (apt-get install postgresql)";
            if under_ci() {
                panic!("{msg} but CI=true");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("callgate-pg")
            .tempdir()
            .expect("tempdir");
        let user = is_root().then(|| {
            if user_exists("postgres") {
                "postgres".to_string()
            } else {
                "nobody".to_string()
            }
        });
        if let Some(u) = &user {
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to {u}", dir.path().display());
        }
        let port = super::tools::free_tcp_port();
        let pg = Postgres {
            dir,
            bin,
            user,
            port,
        };
        let data = pg.data();
        pg.run_ok(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "callgate",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {port} -k {} -h 127.0.0.1 -F -c max_connections=200",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("server.log");
        pg.run_ok(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run_ok(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of database `db` (see `create_db`).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://callgate@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database.
    pub fn create_db(&self, db: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
    }

    /// Rows of `sql` in `db`, each as its columns' text (NULL as "").
    pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<String>> {
        self.psql(db, sql)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let psql = find("psql").expect("psql");
        let out = Command::new(psql)
            .args(["-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "callgate", "-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Postgres {
    /// Stops the server at once (as if the database host went away).
    pub fn stop(&self) {
        let data = self.data();
        self.run_ok(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap_or_default(), "-m", "immediate"])
            .args(["-w", "-t", "20", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
